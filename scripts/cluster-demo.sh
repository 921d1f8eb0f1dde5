#!/usr/bin/env bash
# A local meshscope cluster on loopback (ADR 0015): two ClickHouse shards (Debian's
# clickhouse-server, the `mesh` cluster), three `meshscope serve` nodes over them, and the
# demo mesh (`meshscope demo`) sending its spans to node 1, which routes each trace to its
# owner. Every node answers every query:
#   n1 http://127.0.0.1:16686   n2 http://127.0.0.1:16687   n3 http://127.0.0.1:16688
# Ctrl-C stops everything (by PID). Data lives in a temporary directory, removed at the end.
#   scripts/cluster-demo.sh [seconds]   (run for that long, then stop; default: until Ctrl-C)
# MESHSCOPE_DEMO_PORT_OFFSET=N adds N to every port above and below (e.g. beside a running
# meshscope on the default ports; the test of this script runs it that way).
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

OFF=${MESHSCOPE_DEMO_PORT_OFFSET:-0}
SHARD_PORTS=($((9110 + OFF)) $((9120 + OFF)))
UI_PORTS=($((16686 + OFF)) $((16687 + OFF)) $((16688 + OFF)))
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
<listen_host>127.0.0.1</listen_host><tcp_port>${SHARD_PORTS[$i]}</tcp_port><http_port>$((8130 + OFF + i))</http_port>
<path>$home/data/</path><tmp_path>$home/tmp/</tmp_path><user_files_path>$home/user_files/</user_files_path>
<format_schema_path>$home/format_schemas/</format_schema_path><users_config>$home/users.xml</users_config>
<default_profile>default</default_profile><default_database>default</default_database><timezone>UTC</timezone>
<mark_cache_size>67108864</mark_cache_size>
<compression><case><method>zstd</method><level>1</level></case><case><min_part_size>16777216</min_part_size><method>zstd</method><level>6</level></case></compression>$REMOTE</yandex>
XML
    (cd "$home" && exec "$CLICKHOUSE" --config-file="$home/config.xml" >"$home/stdout.log" 2>&1) &
    PIDS+=($!)
done

PEERS="[{id: n1, url: \"http://127.0.0.1:${UI_PORTS[0]}\"}, {id: n2, url: \"http://127.0.0.1:${UI_PORTS[1]}\"}, {id: n3, url: \"http://127.0.0.1:${UI_PORTS[2]}\"}]"
SHARDS="[\"clickhouse://127.0.0.1:${SHARD_PORTS[0]}\", \"clickhouse://127.0.0.1:${SHARD_PORTS[1]}\"]"
for i in 1 2 3; do
    n=$((i - 1))
    # Wait for the shards: the nodes create their tables at start.
    for _ in $(seq 100); do
        "$PYTHON" -c "import clickhouse_driver as c; [c.Client('127.0.0.1', port=p).execute('SELECT 1') for p in (${SHARD_PORTS[0]}, ${SHARD_PORTS[1]})]" 2>/dev/null && break
        sleep 0.3
    done
    MESHSCOPE_STORAGE__KIND=clickhouse \
    MESHSCOPE_SERVER__UI_PORT=${UI_PORTS[$n]} MESHSCOPE_SERVER__OTLP_HTTP_PORT=$((4318 + OFF + 10 * n)) \
    MESHSCOPE_SERVER__OTLP_GRPC_PORT=$((4317 + OFF + 10 * n)) MESHSCOPE_SERVER__ZIPKIN_PORT=$((9411 + OFF + 10 * n)) \
    MESHSCOPE_PIPELINE__INGEST_WORKERS=1 \
    MESHSCOPE_CLUSTER__NODE_ID=n$i MESHSCOPE_CLUSTER__PEERS="$PEERS" MESHSCOPE_CLUSTER__SHARDS="$SHARDS" \
    MESHSCOPE_CLUSTER__CLICKHOUSE_CLUSTER=mesh MESHSCOPE_CLUSTER__HEALTH_INTERVAL_SECONDS=2 \
        "$PYTHON" -m meshscope.cli serve >"$DIR/n$i.log" 2>&1 &
    PIDS+=($!)
done
for port in "${UI_PORTS[@]}"; do
    for _ in $(seq 200); do
        "$PYTHON" -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/health')" 2>/dev/null && break
        sleep 0.3
    done
done
"$PYTHON" -m meshscope.cli demo --otlp-endpoint "http://127.0.0.1:$((4318 + OFF))" --logs "$DIR/demo.jsonl" >"$DIR/demo.log" 2>&1 &
PIDS+=($!)
echo "cluster-demo: nodes n1 http://127.0.0.1:${UI_PORTS[0]}, n2 :${UI_PORTS[1]}, n3 :${UI_PORTS[2]}; logs in $DIR"
if [ $# -gt 0 ]; then sleep "$1"; else wait; fi
