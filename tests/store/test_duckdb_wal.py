"""The DuckDB log at low load and at a clean stop (docs/adr/0006, revision 3).

At a low rate every request is its own small commit, and DuckDB logs each small append to a
table with list columns together with the list data of every row before it in the same
2048-row vector: the log grows ~quadratically between checkpoints. The 512 MB checkpoint
threshold is sized for 40k spans/s, so at low load the writer's upkeep checkpoints instead
once the log has grown; and a clean stop checkpoints, leaving no log beside the file.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from meshscope.clock import SystemClock
from meshscope.ingest.loadgen import build_request
from meshscope.ingest.otlp import decode_otlp
from meshscope.model.batch import Batch
from meshscope.pipeline.chain import Pipeline
from meshscope.pipeline.writer import BatchWriter, WriterSettings
from meshscope.store.duckdb import DuckDBStorage
from meshscope.store.duckdb import storage as duckdb_storage
from tests.e2e.test_durability import Ports, _healthy
from tests.ingest.asgi_server import free_port

LIMIT = 256 * 1024


def _one_span_batches(count: int) -> list[Batch]:
    rng = random.Random(7)
    now = time.time_ns()
    return [decode_otlp("traces", build_request(1, 2, rng, now)).batch for _ in range(count)]


def test_low_load_checkpoints_the_log_once_it_has_grown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small commits one after another (a writer mostly idle): the log is checkpointed when
    it passes the low-load size, instead of growing until the 512 MB threshold."""
    monkeypatch.setattr(duckdb_storage, "LOW_LOAD_CHECKPOINT_BYTES", LIMIT)
    monkeypatch.setattr(duckdb_storage, "LOW_LOAD_CHECKPOINT_INTERVAL_S", 0.0)
    path = tmp_path / "low.duckdb"
    storage = DuckDBStorage(path)
    settings = WriterSettings(flush_interval_s=60, maintenance_interval_s=0.2)
    writer = BatchWriter(
        Pipeline(storage, SystemClock()), settings, maintenance=getattr(storage, "maintain", None)
    )
    wal = path.with_name(path.name + ".wal")
    batches = _one_span_batches(300)
    peak = 0

    async def send() -> None:
        nonlocal peak
        for batch in batches:
            await writer.submit(batch)
            peak = max(peak, wal.stat().st_size if wal.exists() else 0)
            await asyncio.sleep(0.01)  # ~50 commits/s: the store thread mostly idle

    writer.start()
    try:
        asyncio.run(send())
        time.sleep(0.5)  # one more upkeep round
        assert peak < 4 * LIMIT, f"the log reached {peak:,} bytes at low load"
        trace_ids = {span.trace_id for batch in batches for span in batch.spans}
        assert len(storage.traces.get_traces(sorted(trace_ids))) == len(trace_ids)
    finally:
        writer.stop()
        storage.close()


def test_a_clean_close_leaves_no_log_even_while_a_cursor_is_referenced(tmp_path: Path) -> None:
    """`close` checkpoints explicitly instead of relying on DuckDB's checkpoint when the
    last reference to the database goes (a reader's relation is still referenced here)."""
    path = tmp_path / "close.duckdb"
    storage = DuckDBStorage(path)
    for batch in _one_span_batches(20):
        storage.write_batch(spans=batch.spans)
    held = storage._db.read().sql("SELECT count(*) FROM spans")  # noqa: F841 (kept alive)
    wal = path.with_name(path.name + ".wal")
    assert wal.exists() and wal.stat().st_size > 0
    storage.close()
    assert not wal.exists() or wal.stat().st_size == 0
    reopened = DuckDBStorage(path)
    try:
        assert reopened._db.read().execute("SELECT count(*) FROM spans").fetchone() == (20,)
    finally:
        reopened.close()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_meshscope_serve_stopped_by_a_signal_leaves_no_log(
    tmp_path: Path, signum: signal.Signals
) -> None:
    db = tmp_path / "served.duckdb"
    ports = Ports()
    env = dict(os.environ)
    env.update(
        MESHSCOPE_SERVER__OTLP_HTTP_PORT=str(ports.otlp_http),
        MESHSCOPE_SERVER__OTLP_GRPC_PORT=str(ports.otlp_grpc),
        MESHSCOPE_SERVER__ZIPKIN_PORT=str(ports.zipkin),
        MESHSCOPE_SERVER__UI_PORT=str(free_port()),
        MESHSCOPE_STORAGE__PATH=str(db),
        MESHSCOPE_PIPELINE__INGEST_WORKERS="0",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "meshscope.cli", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not _healthy(ports.otlp_http):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        import http.client

        rng = random.Random(3)
        for _ in range(10):
            conn = http.client.HTTPConnection("127.0.0.1", ports.otlp_http, timeout=10)
            body = build_request(5, 2, rng, time.time_ns())
            conn.request("POST", "/v1/traces", body, {"Content-Type": "application/x-protobuf"})
            assert conn.getresponse().status == 200
            conn.close()
        wal = db.with_name(db.name + ".wal")
        assert wal.exists() and wal.stat().st_size > 0
        proc.send_signal(signum)
        assert proc.wait(60) == 0
        assert not wal.exists() or wal.stat().st_size == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
