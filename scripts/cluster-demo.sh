#!/usr/bin/env bash
# A local meshscope cluster on loopback (ADR 0015): two ClickHouse shards (Debian's
# clickhouse-server, the `mesh` cluster), three `meshscope serve` nodes over them, and the
# demo mesh (`meshscope demo`) sending its spans to node 1, which routes each trace to its
# owner. Every node answers every query:
#   n1 http://127.0.0.1:16686   n2 http://127.0.0.1:16687   n3 http://127.0.0.1:16688
# Ctrl-C stops everything (by PID). Data lives in a temporary directory, removed at the end.
#   scripts/cluster-demo.sh [seconds]   (run for that long, then stop; default: until Ctrl-C)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
CLICKHOUSE=$(command -v clickhouse-server || echo /usr/sbin/clickhouse-server)
[ -x "$CLICKHOUSE" ] || { echo "cluster-demo: needs clickhouse-server (scripts/system-deps.sh)" >&2; exit 1; }
DIR=$(mktemp -d /tmp/meshscope-cluster-demo.XXXXXX)
PIDS=()
stop() {
    # TERM, not INT: background jobs of a script ignore SIGINT.
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$DIR"
}
trap stop EXIT
trap 'exit 0' INT TERM

SHARD_PORTS=(9110 9120)
REMOTE="<remote_servers><mesh>"
for port in "${SHARD_PORTS[@]}"; do
    REMOTE+="<shard><replica><host>127.0.0.1</host><port>$port</port></replica></shard>"
done
REMOTE+="</mesh></remote_servers>"
for i in 0 1; do
    home="$DIR/shard$i"
    mkdir -p "$home"
    cat >"$home/users.xml" <<XML
<?xml version="1.0"?>
<yandex><profiles><default><max_memory_usage>1000000000</max_memory_usage></default></profiles>
<users><default><password></password><networks><ip>127.0.0.1</ip></networks>
<profile>default</profile><quota>default</quota></default></users><quotas><default></default></quotas></yandex>
XML
    cat >"$home/config.xml" <<XML
<?xml version="1.0"?>
<yandex><logger><level>warning</level><log>$home/server.log</log><errorlog>$home/server.err.log</errorlog></logger>
<listen_host>127.0.0.1</listen_host><tcp_port>${SHARD_PORTS[$i]}</tcp_port><http_port>$((8130 + i))</http_port>
<path>$home/data/</path><tmp_path>$home/tmp/</tmp_path><user_files_path>$home/user_files/</user_files_path>
<format_schema_path>$home/format_schemas/</format_schema_path><users_config>$home/users.xml</users_config>
<default_profile>default</default_profile><default_database>default</default_database><timezone>UTC</timezone>
<mark_cache_size>67108864</mark_cache_size>
<compression><case><method>zstd</method><level>1</level></case></compression>$REMOTE</yandex>
XML
    (cd "$home" && exec "$CLICKHOUSE" --config-file="$home/config.xml" >"$home/stdout.log" 2>&1) &
    PIDS+=($!)
done

PEERS='[{id: n1, url: "http://127.0.0.1:16686"}, {id: n2, url: "http://127.0.0.1:16687"}, {id: n3, url: "http://127.0.0.1:16688"}]'
SHARDS='["clickhouse://127.0.0.1:9110", "clickhouse://127.0.0.1:9120"]'
for i in 1 2 3; do
    n=$((i - 1))
    # Wait for the shards: the nodes create their tables at start.
    for _ in $(seq 100); do
        "$PYTHON" -c "import clickhouse_driver as c; [c.Client('127.0.0.1', port=p).execute('SELECT 1') for p in (9110, 9120)]" 2>/dev/null && break
        sleep 0.3
    done
    MESHSCOPE_STORAGE__KIND=clickhouse \
    MESHSCOPE_SERVER__UI_PORT=$((16686 + n)) MESHSCOPE_SERVER__OTLP_HTTP_PORT=$((4318 + 10 * n)) \
    MESHSCOPE_SERVER__OTLP_GRPC_PORT=$((4317 + 10 * n)) MESHSCOPE_SERVER__ZIPKIN_PORT=$((9411 + 10 * n)) \
    MESHSCOPE_PIPELINE__INGEST_WORKERS=1 \
    MESHSCOPE_CLUSTER__NODE_ID=n$i MESHSCOPE_CLUSTER__PEERS="$PEERS" MESHSCOPE_CLUSTER__SHARDS="$SHARDS" \
    MESHSCOPE_CLUSTER__CLICKHOUSE_CLUSTER=mesh MESHSCOPE_CLUSTER__HEALTH_INTERVAL_SECONDS=2 \
        "$PYTHON" -m meshscope.cli serve >"$DIR/n$i.log" 2>&1 &
    PIDS+=($!)
done
for port in 16686 16687 16688; do
    for _ in $(seq 200); do
        "$PYTHON" -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/health')" 2>/dev/null && break
        sleep 0.3
    done
done
"$PYTHON" -m meshscope.cli demo --otlp-endpoint http://127.0.0.1:4318 --logs "$DIR/demo.jsonl" >"$DIR/demo.log" 2>&1 &
PIDS+=($!)
echo "cluster-demo: nodes n1 http://127.0.0.1:16686, n2 :16687, n3 :16688; logs in $DIR"
if [ $# -gt 0 ]; then sleep "$1"; else wait; fi
