"""RED (rate, errors, duration) per service or per operation, from the span-metric series.

Never from raw spans: `calls_total` gives rate and errors, the `duration_milliseconds`
histogram the percentiles (interpolated inside buckets, like `histogram_quantile`, so a
percentile is exact only to the bucket it falls in).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from meshscope.model.metrics import Histogram, Labels
from meshscope.model.spans import SpanKind, StatusCode
from meshscope.pipeline.derive.spanmetrics import CALLS, DURATION
from meshscope.query.increase import Growth, increases, merge, quantile
from meshscope.store.base import LabelMatcher, MatchOp, MetricStore

QUANTILES = (0.5, 0.95, 0.99)
_ERROR = StatusCode.ERROR.otel_name


@dataclass(frozen=True, slots=True)
class Red:
    service: str
    operation: str  # "" when grouped by service only
    calls: float
    errors: float
    rate: float  # calls per second over the range
    error_ratio: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


def red(
    metrics: MetricStore,
    start_ns: int,
    end_ns: int,
    service: str = "",
    by_operation: bool = False,
    kind: SpanKind | None = SpanKind.SERVER,
) -> list[Red]:
    """RED of every service (or of `service`), per operation when `by_operation`; only spans
    of `kind` (None: every kind). Sorted by service, then operation."""
    matchers = red_matchers(service, kind)
    return summarize(
        increases(metrics, CALLS, matchers, start_ns, end_ns),
        increases(metrics, DURATION, matchers, start_ns, end_ns),
        (end_ns - start_ns) / 1e9,
        by_operation,
    )


def red_matchers(service: str, kind: SpanKind | None) -> list[LabelMatcher]:
    matchers = []
    if service:
        matchers.append(LabelMatcher("service_name", MatchOp.EQ, service))
    if kind is not None:
        matchers.append(LabelMatcher("span_kind", MatchOp.EQ, kind.otel_name))
    return matchers


def summarize(
    call_growth: Iterable[Growth],
    duration_growth: Iterable[Growth],
    seconds: float,
    by_operation: bool,
) -> list[Red]:
    """RED per service (and operation) from the growth of `calls_total` and of the
    `duration_milliseconds` histogram over `seconds`. Sorted by service, then operation."""
    calls: dict[tuple[str, str], float] = defaultdict(float)
    errors: dict[tuple[str, str], float] = defaultdict(float)
    for growth in call_growth:
        key = _key(growth.labels, by_operation)
        calls[key] += growth.value
        if dict(growth.labels).get("status_code") == _ERROR:
            errors[key] += growth.value
    hists: dict[tuple[str, str], list[Histogram]] = defaultdict(list)
    for growth in duration_growth:
        if growth.histogram is not None:
            hists[_key(growth.labels, by_operation)].append(growth.histogram)
    out: list[Red] = []
    for key in sorted(calls):
        count = calls[key]
        if count <= 0:
            continue
        hist = merge(hists.get(key, []))
        p50, p95, p99 = (quantile(q, hist) for q in QUANTILES)
        out.append(
            Red(
                service=key[0],
                operation=key[1],
                calls=count,
                errors=errors[key],
                rate=count / seconds,
                error_ratio=errors[key] / count,
                p50_ms=p50,
                p95_ms=p95,
                p99_ms=p99,
            )
        )
    return out


def _key(labels: Labels, by_operation: bool) -> tuple[str, str]:
    values = dict(labels)
    return values.get("service_name", ""), values.get("span_name", "") if by_operation else ""
