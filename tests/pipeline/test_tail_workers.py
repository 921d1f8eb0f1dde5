"""Tail sampling with the ingest worker processes: workers decode, encode and summarise the
spans; the owner decides from the summaries and writes the kept traces' rows. The decisions
must be exactly the in-process model path's, traces never split, derivation from every span."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from meshscope.app import build
from meshscope.clock import ManualClock
from meshscope.config import load_config
from meshscope.ingest.loadgen import build_requests
from meshscope.ingest.otlp import decode_otlp
from meshscope.ingest.workers import WorkerSettings, WorkerSink
from meshscope.pipeline.chain import Pipeline
from meshscope.pipeline.sampling.config import from_mapping
from meshscope.pipeline.sampling.tail import TailSampler
from meshscope.pipeline.writer import BatchWriter, WriterSettings
from meshscope.store.base import Storage
from meshscope.store.clickhouse import ClickHouseStorage
from meshscope.store.duckdb import DuckDBStorage
from meshscope.store.memory import MemoryStorage
from tests.conformance import clickhouse_server
from tests.ingest.servers import worker_sink

TAIL = {
    "enabled": True,
    "decision_wait_seconds": 5,
    "policies": [
        {"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}},
        {"name": "slow", "type": "latency", "latency": {"threshold_ms": 48}},
        {"name": "some", "type": "probabilistic", "probabilistic": {"sampling_percentage": 10}},
        {
            "name": "5xx",
            "type": "numeric_attribute",
            "numeric_attribute": {"key": "http.response.status_code", "min_value": 500},
        },
        {
            "name": "checkout-route",
            "type": "string_attribute",
            "string_attribute": {
                "key": "http.route",
                "values": ["^/api/check"],
                "enabled_regex_matching": True,
            },
        },
    ],
}
MAX = 2**63 - 1


def tail_sampler() -> TailSampler:
    return TailSampler.from_config(from_mapping({"tail": TAIL}).tail)


def stored(storage: Storage, trace_ids: set[str]) -> dict[str, int]:
    """Spans stored per trace id, of the trace ids given."""
    out = {}
    for trace_id in trace_ids:
        spans = storage.traces.get_trace(trace_id)
        if spans:
            out[trace_id] = len(spans)
    return out


def open_store(kind: str, directory: Path) -> Storage:
    """A DuckDB file, or a database on the test run's ClickHouse server."""
    if kind == "duckdb":
        return DuckDBStorage(directory / "tail.duckdb")
    reason = clickhouse_server.available()
    if reason:
        pytest.skip(reason)
    return ClickHouseStorage(clickhouse_server.dsn(), clickhouse_server.database_for(directory))


@pytest.mark.parametrize("kind", ["duckdb", "clickhouse"])
def test_workers_and_the_in_process_path_keep_the_same_traces(kind: str, tmp_path: Path) -> None:
    bodies = build_requests(8, 400, services=6, seed=21)
    sent = Counter(
        span.trace_id for body in bodies for span in decode_otlp("traces", body).batch.spans
    )

    reference = Pipeline(MemoryStorage(), ManualClock(), tail=tail_sampler())
    for body in bodies:
        reference.consume(decode_otlp("traces", body).batch)
    reference.clock.advance(6)  # type: ignore[attr-defined]
    reference.tick()
    want = stored(reference.storage, set(sent))

    clock = ManualClock()
    storage = open_store(kind, tmp_path)
    pipeline = Pipeline(storage, clock, tail=tail_sampler())
    writer = WriterSettings(flush_interval_s=3600, tick_interval_s=0.05)
    with worker_sink(pipeline, WorkerSettings(processes=2), writer) as sink:

        async def send() -> None:
            await asyncio.gather(
                *(sink.submit_encoded("traces", body, "identity", json=False) for body in bodies)
            )

        asyncio.run(send())
        assert sink.prepared_bodies["traces"] == len(bodies)  # decoded by the workers
        assert storage.traces.span_counts() == {}  # nothing decided before the wait
        assert pipeline.tail is not None and pipeline.tail.buffered_spans == sum(sent.values())
        clock.advance(6)
        deadline = time.monotonic() + 30
        while pipeline.tail.buffered_traces and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pipeline.tail.buffered_traces == 0
        assert isinstance(sink.writer, BatchWriter)
        sink.writer.stop()  # commits what the last tick released
        got = stored(storage, set(sent))
    assert got == want
    assert all(count == sent[trace_id] for trace_id, count in got.items())  # never split
    assert 0 < len(got) < len(sent)
    assert reference.tail is not None
    decisions = reference.tail.stats.policy_decisions
    for policy in ("errors", "slow", "some", "5xx", "checkout-route"):
        assert decisions[(policy, "sampled")] > 0, policy  # every kind of policy decided


def test_the_server_uses_the_workers_with_tail_sampling_on(tmp_path: Path) -> None:
    path = tmp_path / "tail.yaml"
    path.write_text(yaml.safe_dump({"storage": {"path": str(tmp_path / "s.duckdb")},
                                    "sampling": {"tail": TAIL}}))  # fmt: skip
    config = load_config(path, env={})
    app = build(config)
    try:
        assert isinstance(app.sink, WorkerSink)
        assert app.pipeline.span_matcher is not None
    finally:
        app.storage.close()


@pytest.mark.parametrize(
    ("kind", "interval_s", "configured", "floor_s"),
    [("duckdb", 0.0, 0.5, 0.0), ("clickhouse", 1.0, None, 0.2), ("clickhouse", 1.0, 0.05, 0.05)],
)
def test_inserts_gather_on_clickhouse_not_on_duckdb(
    kind: str, interval_s: float, configured: float | None, floor_s: float, tmp_path: Path
) -> None:
    """ADR 0027: on ClickHouse each insert makes a part, so the writer batches the calls
    paired from spans; on DuckDB they go with the next group. ADR 0030: on ClickHouse groups
    go at most every `storage.clickhouse.min_insert_interval_seconds` (0.2 s by default);
    on DuckDB the setting is not used."""
    storage: dict[str, object] = {"kind": kind, "path": str(tmp_path / "s.duckdb")}
    section: dict[str, object] = {}
    if configured is not None:
        section["min_insert_interval_seconds"] = configured
    if kind == "clickhouse":
        reason = clickhouse_server.available()
        if reason:
            pytest.skip(reason)
        section.update(dsn=clickhouse_server.dsn(),
                       database=clickhouse_server.database_for(tmp_path))  # fmt: skip
    storage["clickhouse"] = section
    path = tmp_path / "calls.yaml"
    path.write_text(yaml.safe_dump({"storage": storage}))
    app = build(load_config(path, env={}))
    try:
        assert app.writer.settings.paired_calls_interval_s == interval_s
        assert app.writer.settings.min_commit_interval_s == floor_s
    finally:
        app.storage.close()
