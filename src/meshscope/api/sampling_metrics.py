"""Sampling decisions on `/metrics`: read from the samplers' stats at scrape time.

Register on the same registry as the ingest collector:
    registry.register(SamplingCollector(tail=sampler, head=head_filter))
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from meshscope.pipeline.sampling.head import HeadSamplingFilter
from meshscope.pipeline.sampling.tail import TailSampler


class SamplingCollector(Collector):
    def __init__(
        self, tail: TailSampler | None = None, head: HeadSamplingFilter | None = None
    ) -> None:
        self._tail = tail
        self._head = head

    def collect(self) -> Iterator[Metric]:
        if self._head is not None:
            spans = CounterMetricFamily(
                "meshscope_head_sampling_spans",
                "Spans kept or dropped by pipeline head sampling.",
                labels=["decision"],
            )
            spans.add_metric(["sampled"], self._head.stats.spans_kept)
            spans.add_metric(["not_sampled"], self._head.stats.spans_dropped)
            yield spans
        if self._tail is not None:
            yield from _tail_metrics(self._tail)


def _tail_metrics(sampler: TailSampler) -> Iterator[Metric]:
    stats = sampler.stats
    traces = CounterMetricFamily(
        "meshscope_tail_sampling_traces", "Traces decided by tail sampling.", labels=["decision"]
    )
    traces.add_metric(["sampled"], stats.traces_sampled)
    traces.add_metric(["not_sampled"], stats.traces_not_sampled)
    yield traces
    spans = CounterMetricFamily(
        "meshscope_tail_sampling_spans",
        "Spans of decided traces, by decision.",
        labels=["decision"],
    )
    spans.add_metric(["sampled"], stats.spans_sampled)
    spans.add_metric(["not_sampled"], stats.spans_not_sampled)
    yield spans
    late = CounterMetricFamily(
        "meshscope_tail_sampling_late_spans",
        "Spans that arrived after their trace was decided; they follow the decision.",
        labels=["decision"],
    )
    late.add_metric(["sampled"], stats.late_spans_sampled)
    late.add_metric(["not_sampled"], stats.late_spans_not_sampled)
    yield late
    yield CounterMetricFamily(
        "meshscope_tail_sampling_evicted_traces",
        "Traces decided before their wait was over because num_traces was reached.",
        value=stats.traces_evicted,
    )
    policies = CounterMetricFamily(
        "meshscope_tail_sampling_policy_decisions",
        "Decisions of each tail-sampling policy.",
        labels=["policy", "decision"],
    )
    for (policy, decision), count in list(stats.policy_decisions.items()):
        policies.add_metric([policy, decision], count)
    yield policies
    yield GaugeMetricFamily(
        "meshscope_tail_sampling_buffered_traces",
        "Traces waiting for a tail-sampling decision.",
        value=sampler.buffered_traces,
    )
    yield GaugeMetricFamily(
        "meshscope_tail_sampling_buffered_spans",
        "Spans waiting for a tail-sampling decision.",
        value=sampler.buffered_spans,
    )
