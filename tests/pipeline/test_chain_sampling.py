"""Sampling inside the pipeline: derivation sees every span, the store only what is kept."""

from __future__ import annotations

from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

from meshscope.clock import ManualClock
from meshscope.model.batch import Batch
from meshscope.model.spans import Span, SpanKind, StatusCode
from meshscope.pipeline.chain import Pipeline
from meshscope.pipeline.prepared import prepare
from meshscope.pipeline.sampling.config import from_mapping
from meshscope.pipeline.sampling.head import HeadSamplingFilter
from meshscope.pipeline.sampling.tail import TailSampler
from meshscope.store.memory import MemoryStorage

MAX = 2**63 - 1


def trace(i: int, error: bool) -> list[Span]:
    tid = f"{(i + 1) * 0x9E3779B97F4A7C15F39CC0605CEDC835 % 2**128:032x}"
    status = StatusCode.ERROR if error else StatusCode.UNSET
    root = Span(tid, f"{2 * i + 1:016x}", "GET /", "web", 0, 10**6, kind=SpanKind.SERVER)
    child = Span(tid, f"{2 * i + 2:016x}", "q", "db", 1, 10**5, root.span_id, SpanKind.SERVER,
                 status)  # fmt: skip
    return [root, child]


def calls_total(storage: MemoryStorage) -> float:
    return sum(s.samples[-1].value for s in storage.metrics.latest("calls_total", [], MAX, MAX))


def test_tail_sampling_keeps_error_traces_whole_and_derives_from_all() -> None:
    config = from_mapping(
        {
            "tail": {
                "enabled": True,
                "decision_wait_seconds": 5,
                "policies": [
                    {
                        "name": "errors",
                        "type": "status_code",
                        "status_code": {"status_codes": ["ERROR"]},
                    }
                ],
            }
        }
    )
    clock = ManualClock()
    storage = MemoryStorage()
    pipeline = Pipeline(storage, clock, tail=TailSampler.from_config(config.tail))
    spans = [span for i in range(40) for span in trace(i, error=i % 4 == 0)]
    pipeline.consume(Batch(spans=spans[::2]))  # roots first, children in a later batch
    pipeline.consume(Batch(spans=spans[1::2]))
    assert storage.traces.span_counts() == {}  # nothing decided yet
    clock.advance(6)
    pipeline.tick()
    kept = {s.trace_id for s in spans if storage.traces.get_trace(s.trace_id)}
    assert kept == {trace(i, error=True)[0].trace_id for i in range(0, 40, 4)}
    assert storage.traces.span_counts() == {"web": 10, "db": 10}  # never split
    pipeline.flush()
    assert calls_total(storage) == 80  # span metrics saw every span
    edges = storage.metrics.latest("traces_service_graph_request_total", [], MAX, MAX)
    assert [s.samples[-1].value for s in edges] == [40]


def test_drain_decides_what_is_still_buffered() -> None:
    config = from_mapping({"tail": {"enabled": True, "policies": [
        {"name": "all", "type": "always_sample"}]}})  # fmt: skip
    storage = MemoryStorage()
    pipeline = Pipeline(storage, ManualClock(), tail=TailSampler.from_config(config.tail))
    pipeline.consume(Batch(spans=trace(1, error=False)))
    pipeline.drain()
    assert storage.traces.span_counts() == {"web": 1, "db": 1}


def test_head_sampling_stores_the_ratio_consistently_and_derives_from_all() -> None:
    storage = MemoryStorage()
    pipeline = Pipeline(storage, ManualClock(), head=HeadSamplingFilter(0.25))
    spans = [span for i in range(400) for span in trace(i * 7919, error=False)]
    pipeline.consume(Batch(spans=spans))
    bound = TraceIdRatioBased(0.25).bound  # OpenTelemetry's own rule: low 64 bits < bound
    expected = {s.trace_id for s in spans if int(s.trace_id, 16) & (2**64 - 1) < bound}
    stored = {s.trace_id for s in spans if storage.traces.get_trace(s.trace_id)}
    assert stored == expected and 0 < len(stored) < 400
    assert all(len(storage.traces.get_trace(t)) == 2 for t in stored)
    pipeline.flush()
    assert calls_total(storage) == 800


def test_spans_prepared_without_a_trace_summary_are_written_not_dropped() -> None:
    config = from_mapping({"tail": {"enabled": True, "policies": [
        {"name": "errors", "type": "status_code", "status_code": {}}]}})  # fmt: skip
    storage = MemoryStorage()
    pipeline = Pipeline(storage, ManualClock(), tail=TailSampler.from_config(config.tail))
    spans = trace(3, error=False)
    unsummarised = prepare(Batch(spans=spans), pipeline.span_encoder)  # e.g. an older worker
    assert unsummarised.traces is None
    pipeline.commit([unsummarised])
    assert storage.traces.span_counts() == {"web": 1, "db": 1}
