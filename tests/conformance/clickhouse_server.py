"""A real ClickHouse server (Debian's `clickhouse-server`, scripts/system-deps.sh) for the
tests: one per test run, started on first use on free loopback ports in a temp dir, stopped
by its PID when the run ends (tests/conftest.py). Each test uses a fresh database."""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from clickhouse_driver import Client
from clickhouse_driver import errors as ch_errors

from meshscope.store.clickhouse import ClickHouseStorage
from tests.ingest.asgi_server import free_port

BINARY_NAMES = ("clickhouse-server", "/usr/sbin/clickhouse-server", "/usr/bin/clickhouse")
START_TIMEOUT_S = 60.0


def binary() -> list[str] | None:
    """The command that starts a server, or None when none is installed."""
    for name in BINARY_NAMES:
        found = shutil.which(name)
        if found:
            return [found, "server"] if found.endswith("/clickhouse") else [found]
    return None


def available() -> str:
    """Why the ClickHouse backend cannot be tested here ("" when it can). In CI (CI=true) a
    missing server is a failure, not a skip: the caller gets "" and `dsn()` raises."""
    if binary() is None and os.environ.get("CI", "").lower() not in ("1", "true", "yes"):
        return "clickhouse-server is not installed (scripts/system-deps.sh installs it)"
    return ""


_CONFIG = """<?xml version="1.0"?>
<yandex>
    <logger><level>warning</level><log>{dir}/server.log</log>
        <errorlog>{dir}/server.err.log</errorlog><size>10M</size><count>1</count></logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>{tcp}</tcp_port>
    <http_port>{http}</http_port>
    <path>{dir}/data/</path>
    <tmp_path>{dir}/tmp/</tmp_path>
    <user_files_path>{dir}/user_files/</user_files_path>
    <format_schema_path>{dir}/format_schemas/</format_schema_path>
    <users_config>{dir}/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mark_cache_size>67108864</mark_cache_size>
    <uncompressed_cache_size>67108864</uncompressed_cache_size>
    <max_concurrent_queries>50</max_concurrent_queries>
    {compression}
    {remote_servers}
</yandex>
"""
_USERS = """<?xml version="1.0"?>
<yandex>
    <profiles><default><max_memory_usage>1000000000</max_memory_usage></default></profiles>
    <users><default><password></password><networks><ip>127.0.0.1</ip></networks>
        <profile>default</profile><quota>default</quota></default></users>
    <quotas><default></default></quotas>
</yandex>
"""


MERGED_LEVEL = 6
"""The zstd level of parts merged from at least `MERGED_MIN_BYTES` (ADR 0011, revision 7)."""
MERGED_MIN_BYTES = 16 * 2**20
"""Compressed bytes of a merge's parts from which it writes at `MERGED_LEVEL`: inserts and
the small merges right after them stay at level 1."""


def tiered(
    merged_min_bytes: int = MERGED_MIN_BYTES, level: int = MERGED_LEVEL, *larger: tuple[int, int]
) -> str:
    """zstd level 1 for every part, `level` for parts merged from `merged_min_bytes` or more,
    and each (bytes, level) of `larger` from its size on (ClickHouse takes the last `case`
    whose conditions hold; an insert's size counts as 0)."""
    cases = "".join(
        f"<case><min_part_size>{size}</min_part_size><method>zstd</method>"
        f"<level>{at}</level></case>"
        for size, at in [(merged_min_bytes, level), *larger]
    )
    return f"<compression><case><method>zstd</method><level>1</level></case>{cases}</compression>"


COMPRESSION = {
    "zstd": tiered(),
    "zstd256": tiered(256 * 2**20),
    "zstd3": tiered(MERGED_MIN_BYTES, 3, (256 * 2**20, MERGED_LEVEL)),
    "zstd1": "<compression><case><method>zstd</method><level>1</level></case></compression>",
    "lz4": "",
}
"""The server-wide compression of MergeTree parts: `zstd` (level 1, and `MERGED_LEVEL` for
parts merged from `MERGED_MIN_BYTES`) is what docs/configuration.md asks servers without
column codecs (before 20.1, the `compat` DDL) to be given, so the tests and benchmarks run
it; `zstd256` (the same from 256 MiB: the ingest-heavy variant it documents), `zstd3` (level 3
from 16 MiB and `MERGED_LEVEL` from 256 MiB, measured against it), `zstd1` (level 1
for every part, what it asked before) and `lz4` (ClickHouse's default) are for comparing.
Columns with a CODEC (the `modern` DDL) keep theirs either way."""


CLUSTER = "mesh"
"""The cluster every test server's `remote_servers` names: the run's shared server and a
second one started on first use (`shard_dsns`), the two shards of the cluster tests."""


def remote_servers(ports: tuple[int, ...]) -> str:
    shards = "".join(
        f"<shard><replica><host>127.0.0.1</host><port>{port}</port></replica></shard>"
        for port in ports
    )
    return f"<remote_servers><{CLUSTER}>{shards}</{CLUSTER}></remote_servers>"


PARENT_HELP = (
    "where the ClickHouse server's directory (its data) is made (default: the temp directory);"
    " e.g. a journaled ext4 or XFS mount: on ext4 without a journal the kernel's inode"
    " allocation is most of the server's insert CPU (docs/configuration.md)"
)
"""The help of the benchmarks' `--clickhouse-dir` (`ClickHouseServer`'s `parent`)."""


def file_system(
    path: Path, mounts: Path = Path("/proc/mounts"), ext4: Path = Path("/sys/fs/ext4")
) -> str:
    """The file system `path` is on, as the benchmarks print it beside their figures: its
    type, and for ext4 whether it has a journal (`<ext4>/<device>/journal_task` reads
    `<none>` without one, where ClickHouse's part files cost far more server CPU:
    docs/configuration.md)."""
    target = str(path.resolve())
    best = ("", "", "")
    for line in mounts.read_text().splitlines():
        device, point, kind = line.split()[:3]
        if (target == point or target.startswith(point.rstrip("/") + "/")) and len(point) > len(
            best[1]
        ):
            best = (device, point, kind)
    device, point, kind = best
    if kind != "ext4":
        return f"{kind or 'unknown'} ({point})"
    task = ext4 / Path(device).name / "journal_task"
    journal = task.read_text().strip() if task.exists() else "?"
    if journal == "<none>":
        return (
            f"ext4 WITHOUT a journal ({point}): ClickHouse's part files cost far more server"
            " CPU here than on a journaled ext4 or XFS (docs/configuration.md; --clickhouse-dir)"
        )
    return f"ext4, journaled ({point})"


class ClickHouseServer:
    """One server process; no interserver or MySQL listener (neither is configured).
    `tcp_port` and `shard_ports` (the TCP ports of the `mesh` cluster's shards, in order)
    are chosen by the caller when it starts several servers of one cluster."""

    def __init__(
        self,
        extra_config: str = "",
        *,
        tcp_port: int | None = None,
        shard_ports: tuple[int, ...] = (),
        compression: str = "zstd",
        parent: Path | None = None,
    ) -> None:
        """`extra_config`: XML elements added to the server's config (e.g. a TLS port);
        `compression`: a key of COMPRESSION, or a `<compression>` element; `parent`: where
        its directory (data, logs) is made (the system's temp directory by default)."""
        command = binary()
        if command is None:
            raise RuntimeError(
                "clickhouse-server is not installed: run scripts/system-deps.sh"
                " (apt-get install clickhouse-server)"
            )
        self.dir = Path(tempfile.mkdtemp(prefix="meshscope-clickhouse-", dir=parent))
        self.tcp_port, self.http_port = tcp_port or free_port(), free_port()
        (self.dir / "config.xml").write_text(
            _CONFIG.format(
                dir=self.dir,
                tcp=self.tcp_port,
                http=self.http_port,
                compression=COMPRESSION.get(compression, compression),
                remote_servers=remote_servers(shard_ports) if shard_ports else "",
            ).replace("</yandex>", extra_config + "</yandex>")
        )
        (self.dir / "users.xml").write_text(_USERS)
        self._command = command
        self._log = (self.dir / "stdout.log").open("w")
        self.process = self._spawn()
        self.dsn = f"clickhouse://default@127.0.0.1:{self.tcp_port}/default"
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [*self._command, f"--config-file={self.dir / 'config.xml'}"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.dir,
        )

    def kill(self) -> None:
        """SIGKILL the server (a crash: no shutdown) and wait until it is gone."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=20)

    def restart(self) -> None:
        """Start the server again on the same data directory and ports (after `kill`)."""
        assert self.process.poll() is not None, "the server is still running"
        self.process = self._spawn()
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                errors = (self.dir / "server.err.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(
                    f"clickhouse-server exited ({self.process.returncode}): {errors}"
                )
            client = Client("127.0.0.1", port=self.tcp_port, connect_timeout=1)
            try:
                client.execute("SELECT 1")
                return
            except (ch_errors.Error, OSError, EOFError):
                time.sleep(0.2)
            finally:
                client.disconnect()
        raise RuntimeError(f"clickhouse-server did not answer within {START_TIMEOUT_S:.0f} s")

    def terminate(self) -> None:
        """Ask the server to stop (it takes seconds: `stop` waits for it)."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)  # a stopped one (SIGSTOP) cannot stop
            os.kill(self.process.pid, signal.SIGTERM)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


_shared: ClickHouseServer | None = None
_second: ClickHouseServer | None = None
_ports: tuple[int, int] = (0, 0)


def dsn() -> str:
    """The DSN of the run's server, started on first use."""
    global _shared, _ports
    if _shared is None:
        _ports = (free_port(), free_port())
        _shared = ClickHouseServer(tcp_port=_ports[0], shard_ports=_ports)
        atexit.register(stop_shared)
    return _shared.dsn


def shard_dsns() -> list[str]:
    """The DSNs of the `mesh` cluster's two shards: the run's server and a second one,
    started on first use."""
    global _second
    first = dsn()
    if _second is None:
        _second = ClickHouseServer(tcp_port=_ports[1], shard_ports=_ports)
    return [first, _second.dsn]


def stop_shared() -> None:
    global _shared, _second
    servers = [server for server in (_shared, _second) if server is not None]
    for server in servers:  # both stop at once: each takes ~10 s
        server.terminate()
    for server in servers:
        server.stop()
    _shared = _second = None


def drop_cluster_database(shards: list[str], database: str) -> None:
    """Drop a cluster test's database and its `_dist` one from every shard (the shards
    outlive the test)."""
    from clickhouse_driver import Client

    for shard in shards:
        client = Client.from_url(shard)
        client.execute(f"DROP DATABASE IF EXISTS {database}_dist")
        client.execute(f"DROP DATABASE IF EXISTS {database}")
        client.disconnect()


def database_for(directory: Path) -> str:
    """A database name of its own for each test directory (the same one when reopened)."""
    return "t_" + hashlib.sha1(str(directory).encode()).hexdigest()[:16]


def fresh_storage(directory: Path) -> Iterator[ClickHouseStorage]:
    """A fixture body: a store in a database of its own on the run's server (skipped where
    no server can run), dropped afterwards."""
    reason = available()
    if reason:
        pytest.skip(reason)
    opened = ClickHouseStorage(dsn(), database_for(directory))
    try:
        yield opened
    finally:
        opened.drop()
