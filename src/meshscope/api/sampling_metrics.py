"""Sampling decisions on `/metrics`: read from the samplers' stats at scrape time.

Register on the same registry as the ingest collector:
    registry.register(SamplingCollector(lambda: [(sampler, head_filter)]))
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from meshscope.pipeline.sampling.head import HeadSamplingFilter
from meshscope.pipeline.sampling.tail import TailSampler

Samplers = tuple[TailSampler | None, HeadSamplingFilter | None]


class SamplingCollector(Collector):
    """The samplers' counters: one pipeline's, or with tenancy on the sum over every
    tenant's. `samplers()` gives each pipeline's (tail, head) samplers, None when off."""

    def __init__(self, samplers: Callable[[], Sequence[Samplers]]) -> None:
        self._samplers = samplers

    def collect(self) -> Iterator[Metric]:
        found = self._samplers()
        heads = [head for _, head in found if head is not None]
        if heads:
            spans = CounterMetricFamily(
                "meshscope_head_sampling_spans",
                "Spans kept or dropped by pipeline head sampling.",
                labels=["decision"],
            )
            spans.add_metric(["sampled"], sum(head.stats.spans_kept for head in heads))
            spans.add_metric(["not_sampled"], sum(head.stats.spans_dropped for head in heads))
            yield spans
        tails = [tail for tail, _ in found if tail is not None]
        if tails:
            yield from _tail_metrics(tails)


def _tail_metrics(samplers: Sequence[TailSampler]) -> Iterator[Metric]:
    stats = [sampler.stats for sampler in samplers]

    def total(field: str) -> int:
        return sum(int(getattr(one, field)) for one in stats)

    traces = CounterMetricFamily(
        "meshscope_tail_sampling_traces", "Traces decided by tail sampling.", labels=["decision"]
    )
    traces.add_metric(["sampled"], total("traces_sampled"))
    traces.add_metric(["not_sampled"], total("traces_not_sampled"))
    yield traces
    spans = CounterMetricFamily(
        "meshscope_tail_sampling_spans",
        "Spans of decided traces, by decision.",
        labels=["decision"],
    )
    spans.add_metric(["sampled"], total("spans_sampled"))
    spans.add_metric(["not_sampled"], total("spans_not_sampled"))
    yield spans
    late = CounterMetricFamily(
        "meshscope_tail_sampling_late_spans",
        "Spans that arrived after their trace was decided; they follow the decision.",
        labels=["decision"],
    )
    late.add_metric(["sampled"], total("late_spans_sampled"))
    late.add_metric(["not_sampled"], total("late_spans_not_sampled"))
    yield late
    yield CounterMetricFamily(
        "meshscope_tail_sampling_evicted_traces",
        "Traces decided before their wait was over because num_traces was reached.",
        value=total("traces_evicted"),
    )
    policies = CounterMetricFamily(
        "meshscope_tail_sampling_policy_decisions",
        "Decisions of each tail-sampling policy.",
        labels=["policy", "decision"],
    )
    decisions: Counter[tuple[str, str]] = Counter()
    for one in stats:
        decisions.update(dict(list(one.policy_decisions.items())))
    for (policy, decision), count in decisions.items():
        policies.add_metric([policy, decision], count)
    yield policies
    yield GaugeMetricFamily(
        "meshscope_tail_sampling_buffered_traces",
        "Traces waiting for a tail-sampling decision.",
        value=sum(sampler.buffered_traces for sampler in samplers),
    )
    yield GaugeMetricFamily(
        "meshscope_tail_sampling_buffered_spans",
        "Spans waiting for a tail-sampling decision.",
        value=sum(sampler.buffered_spans for sampler in samplers),
    )
