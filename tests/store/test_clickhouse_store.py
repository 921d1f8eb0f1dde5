"""The ClickHouse backend beyond the conformance suite: version/profile detection, retention
by dropped partitions, calls stored as access logs, and clear errors for bad DSNs and
unreachable servers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshscope.model.access_logs import access_log
from meshscope.model.calls import Call
from meshscope.model.logs import LogRecord
from meshscope.model.metrics import MetricPoint
from meshscope.model.spans import Span
from meshscope.store.base import LogQuery, StoreUnavailableError
from meshscope.store.clickhouse import ClickHouseStorage, ClickHouseUnavailableError
from meshscope.store.clickhouse.connection import SEND_RECEIVE_TIMEOUT_S, Connection
from tests.conformance import clickhouse_server
from tests.ingest.asgi_server import free_port
from tests.store import clickhouse_access_checks

S = 1_000_000_000
DAY = 86_400 * S
D0 = 19_700 * DAY  # a UTC midnight


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[ClickHouseStorage]:
    yield from clickhouse_server.fresh_storage(tmp_path)


def test_server_version_and_profile_are_detected(storage: ClickHouseStorage) -> None:
    [(version,)] = storage._conn.rows("SELECT version()")
    assert storage.server_version == version
    assert storage.profile.name == "compat"


def _partitions(storage: ClickHouseStorage, table: str) -> list[str]:
    rows = storage._conn.rows(
        "SELECT DISTINCT partition FROM system.parts WHERE database = %(db)s"
        " AND table = %(table)s AND active ORDER BY partition",
        {"db": storage._conn.database, "table": table},
    )
    return [partition.strip("'") for (partition,) in rows]


def test_expire_drops_whole_days_and_deletes_rows_of_the_cut_day(
    storage: ClickHouseStorage,
) -> None:
    # Two rows a day on three days, at 06:00 and 18:00 UTC.
    times = [D0 + day * DAY + hour * 3600 * S for day in range(3) for hour in (6, 18)]
    storage.write_batch(
        spans=[Span(f"{n + 1:032x}", f"{n + 1:016x}", "op", "web", t, t + S)
               for n, t in enumerate(times)],
        logs=[LogRecord(t, "line", "web") for t in times],
        points=[MetricPoint("m", (), t, value=1.0) for t in times],
    )  # fmt: skip
    days = ["2023-12-09", "2023-12-10", "2023-12-11"]
    for table in ("spans", "trace_spans", "logs", "samples", "samples_latest"):
        assert _partitions(storage, table) == days, table
    # The cut is at noon of the last day: two whole days dropped, one row of the third.
    assert storage.expire(D0 + 2 * DAY + 12 * 3600 * S) == 3 * 5
    for table in ("spans", "trace_spans", "logs", "samples", "samples_latest"):
        assert _partitions(storage, table) == days[2:], table
    assert storage.traces.span_counts() == {"web": 1}
    assert storage.logs.log_counts() == {"web": 1}
    assert [p.time_ns for s in storage.metrics.select("m", [], 0, 2**62) for p in s.samples] == [
        times[-1]
    ]
    assert storage.expire(D0 + 2 * DAY + 12 * 3600 * S) == 0


def test_expire_drops_the_day_of_time_zero(storage: ClickHouseStorage) -> None:
    """A span, log or sample at 0 ns (accepted: OTLP allows it) lands in the partition an
    18.16 server names '0000-00-00'; parsing that name raised ValueError, which stopped
    retention for good on every shard."""
    storage.write_batch(
        spans=[Span(f"{1:032x}", f"{1:016x}", "op", "web", 0, S),
               Span(f"{2:032x}", f"{2:016x}", "op", "web", D0, D0 + S)],
        logs=[LogRecord(0, "at zero", "web"), LogRecord(D0, "now", "web")],
    )  # fmt: skip
    assert len(_partitions(storage, "spans")) == 2
    assert storage.expire(D0) == 2  # the span and the log record at time 0
    assert storage.traces.span_counts() == {"web": 1}
    assert storage.logs.log_counts() == {"web": 1}


def test_samples_latest_keeps_each_days_newest_and_is_filled_for_an_older_database(
    storage: ClickHouseStorage,
) -> None:
    """`samples_latest` (each series' newest sample of each day, which `latest` reads
    first): written with the samples, one row per series and day after merges, and, for a
    database made before it existed, filled from `samples` at start."""
    times = [D0 + day * DAY + hour * 3600 * S for day in range(2) for hour in (6, 18)]
    points = [MetricPoint("m", (("s", "a"),), t, value=float(n)) for n, t in enumerate(times)]
    for point in points[::-1]:  # newest first, a write each: merges must keep the newest
        storage.metrics.write_points([point])
    conn, db = storage._conn, storage._conn.database

    def kept() -> list[tuple[int, float]]:
        for partition in _partitions(storage, "samples_latest"):
            conn.execute(f"OPTIMIZE TABLE {db}.samples_latest PARTITION '{partition}' FINAL")
        return conn.rows(f"SELECT time_ns, value FROM {db}.samples_latest ORDER BY time_ns")

    def latest(store: ClickHouseStorage, at: int) -> float:
        [series] = store.metrics.latest("m", [], at, 3 * DAY)
        return series.samples[0].value

    assert kept() == [(times[1], 1.0), (times[3], 3.0)]
    for table in ("samples_latest", "samples_latest_filled"):  # as a database made before
        conn.execute(f"DROP TABLE {db}.{table}")
    reopened = ClickHouseStorage(clickhouse_server.dsn(), db)
    try:
        assert kept() == [(times[1], 1.0), (times[3], 3.0)]
        # Noon of the second day: its newest (18:00) is later, so that day's samples answer.
        assert latest(reopened, D0 + DAY + 12 * 3600 * S) == 2.0
        assert latest(reopened, D0 + DAY + 6 * 3600 * S - 1) == 1.0  # the first day's newest
        assert latest(reopened, D0 + 3 * DAY) == 3.0
    finally:
        reopened.close()


def test_calls_are_stored_as_the_log_records_access_log_renders(
    storage: ClickHouseStorage,
) -> None:
    calls = [
        Call("web", "db", D0 + i, i == 2, 2_000_000 + i, 1_500_000, "", 500 if i == 2 else 200,
             "GET", "/q", f"{i + 1:032x}", f"{i + 1:016x}")
        for i in range(3)
    ]  # fmt: skip
    line = LogRecord(D0 + 1, "plain", "db", attributes={"none": None, "n": 1})
    storage.write_encoded([], logs=[line], calls=calls)
    rendered = [access_log(call) for call in calls]
    assert storage.logs.find_logs(LogQuery(access=True)) == rendered
    assert storage.logs.find_logs(LogQuery(access=False)) == [line]
    # One insert, the logs first: ties in time keep that order.
    assert storage.logs.find_logs(LogQuery()) == [rendered[0], line, rendered[1], rendered[2]]


def test_access_logs_read_back_as_access_log_renders_them(storage: ClickHouseStorage) -> None:
    clickhouse_access_checks.check_rendering(storage)


def test_log_filters_find_access_logs(storage: ClickHouseStorage) -> None:
    clickhouse_access_checks.check_filters(storage)


def test_expire_drops_and_deletes_access_logs(storage: ClickHouseStorage) -> None:
    times = [D0 + day * DAY + hour * 3600 * S for day in range(3) for hour in (6, 18)]
    storage.write_encoded([], calls=[Call("api", "web", t, False, 1_000) for t in times])
    days = ["2023-12-09", "2023-12-10", "2023-12-11"]
    assert _partitions(storage, "access_logs") == days
    assert storage.expire(D0 + 2 * DAY + 12 * 3600 * S) == 5
    assert _partitions(storage, "access_logs") == days[2:]
    assert [r.time_ns for r in storage.logs.find_logs(LogQuery())] == times[-1:]
    assert storage.logs.log_counts() == {"web": 1}


def test_malformed_dsn_and_database_are_value_errors() -> None:
    with pytest.raises(ValueError, match="must start with clickhouse://"):
        ClickHouseStorage("http://127.0.0.1:9000")
    with pytest.raises(ValueError, match="database 'no-dash'"):
        ClickHouseStorage("clickhouse://127.0.0.1:9000", "no-dash")


def test_unreachable_server_is_one_clear_error_without_the_password() -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(ClickHouseUnavailableError, match=r"Connection refused") as caught:
        ClickHouseStorage(f"clickhouse://me:secret@127.0.0.1:{port}")
    assert "secret" not in str(caught.value)


def test_send_receive_timeout_is_meshscopes_unless_the_dsn_sets_it() -> None:
    # A server silent this long is unavailable (503), not waited for the driver's 300 s.
    default = Connection("clickhouse://127.0.0.1:9000/default", "db")
    given = Connection("clickhouse://127.0.0.1:9000/default?send_receive_timeout=2.5", "db")
    try:
        assert default._client().connection.send_receive_timeout == SEND_RECEIVE_TIMEOUT_S == 30
        assert given._client().connection.send_receive_timeout == 2.5
    finally:
        default.close()
        given.close()
    assert issubclass(ClickHouseUnavailableError, StoreUnavailableError)  # APIs answer 503


def test_serve_on_an_unreachable_server_exits_with_one_line(tmp_path: Path) -> None:
    port = free_port()
    env = dict(os.environ)
    env.update(
        MESHSCOPE_STORAGE__KIND="clickhouse",
        MESHSCOPE_STORAGE__CLICKHOUSE__DSN=f"clickhouse://127.0.0.1:{port}",
    )
    done = subprocess.run(
        [sys.executable, "-m", "meshscope.cli", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    [line] = [text for text in done.stderr.splitlines() if text.startswith("meshscope:")]
    assert line.startswith("meshscope: storage.kind clickhouse: clickhouse at")
    assert f"127.0.0.1:{port}" in line
    assert "Connection refused" in line


def test_the_dsns_tls_options_reach_every_threads_client(tmp_path: Path) -> None:
    """`clickhouses://` with the driver's TLS options: each thread's own client (made from the
    DSN's) connects with them, not only the first (no connection is made here)."""
    ca = tmp_path / "ca.pem"
    dsn = (
        f"clickhouses://u:p@db.example:9440/default?ca_certs={ca}&certfile={tmp_path}/c.pem"
        f"&keyfile={tmp_path}/c.key&server_hostname=ch.internal"
    )
    connection = Connection(dsn, "db")
    try:
        made = connection._client().connection
        assert made.secure_socket and made.verify_cert
        assert made.ssl_options["ca_certs"] == str(ca)
        assert made.ssl_options["certfile"] == f"{tmp_path}/c.pem"
        assert made.ssl_options["keyfile"] == f"{tmp_path}/c.key"
        assert made.server_hostname == "ch.internal"
        unverified = Connection("clickhouses://db.example:9440/default?verify=false", "db")
        assert not unverified._client().connection.verify_cert
        unverified.close()
        plain = Connection("clickhouse://db.example:9000/default", "db")
        assert not plain._client().connection.secure_socket
        plain.close()
    finally:
        connection.close()
