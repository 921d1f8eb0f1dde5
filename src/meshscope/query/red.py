"""RED (rate, errors, duration) per service or per operation, from the span-metric series.

Never from raw spans: `calls_total` gives the calls and errors, `duration_milliseconds` the
percentiles.

Rate: calls per second of the time the service's series cover in the range (`Covered`): from
the range's start, or from when the series started if that is later, to their last sample
(flushed every 15 s while meshscope runs). So a service that started 2 minutes into the
range shows its real rate; one that stopped sending mid-range keeps its (unchanged) series
flushed, so its rate is averaged over the whole time since it started, silence included, and
the charts (`red_range`) show when it stopped. Prometheus' `rate()` divides by the whole
range instead; the Jaeger SPM routes keep that (they are PromQL).

Percentiles: from the exponential histogram kept alongside the buckets (ADR 0010), within
`percentile_error` of the exact quantile of the spans (2.2 % at scale 4); where a series has
none (points stored before it existed), interpolated inside the explicit buckets like
`histogram_quantile` (exact only to the bucket, `percentile_error` None).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from meshscope.model import exphistogram
from meshscope.model.exphistogram import ExpHistogram
from meshscope.model.metrics import Histogram, Labels
from meshscope.model.spans import SpanKind, StatusCode
from meshscope.pipeline.derive.spanmetrics import CALLS, DURATION
from meshscope.query.increase import Covered, Growth, increases_of, merge, quantile
from meshscope.store.base import LabelMatcher, MatchOp, MetricStore

QUANTILES = (0.5, 0.95, 0.99)
_ERROR = StatusCode.ERROR.otel_name


@dataclass(frozen=True, slots=True)
class Red:
    service: str
    operation: str  # "" when grouped by service only
    calls: float
    errors: float
    rate: float  # calls per second of the time covered (see the module's docstring)
    error_ratio: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    # Bound on the percentiles' relative error (exponential histogram); None: from buckets.
    percentile_error: float | None = None


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
    grown = increases_of(metrics, [CALLS, DURATION], matchers, start_ns, end_ns)
    return summarize(
        grown[CALLS],
        grown[DURATION],
        start_ns,
        end_ns,
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
    start_ns: int,
    end_ns: int,
    by_operation: bool,
) -> list[Red]:
    """RED per service (and operation) from the growth of `calls_total` and of the
    `duration_milliseconds` histogram over (start_ns, end_ns]. Sorted by service, then
    operation."""
    calls: dict[tuple[str, str], float] = defaultdict(float)
    errors: dict[tuple[str, str], float] = defaultdict(float)
    covered: dict[tuple[str, str], Covered] = defaultdict(Covered)
    for growth in call_growth:
        key = _key(growth.labels, by_operation)
        calls[key] += growth.value
        covered[key].add(growth, start_ns)
        if dict(growth.labels).get("status_code") == _ERROR:
            errors[key] += growth.value
    hists: dict[tuple[str, str], list[Histogram]] = defaultdict(list)
    exps: dict[tuple[str, str], list[ExpHistogram | None]] = defaultdict(list)
    for growth in duration_growth:
        if growth.histogram is not None and growth.histogram.count:
            key = _key(growth.labels, by_operation)
            hists[key].append(growth.histogram)
            exps[key].append(growth.exp)
    out: list[Red] = []
    for key in sorted(calls):
        count = calls[key]
        if count <= 0:
            continue
        (p50, p95, p99), error = percentiles(QUANTILES, hists.get(key, []), exps.get(key, []))
        out.append(
            Red(
                service=key[0],
                operation=key[1],
                calls=count,
                errors=errors[key],
                rate=covered[key].rate(count, start_ns, end_ns),
                error_ratio=errors[key] / count,
                p50_ms=p50,
                p95_ms=p95,
                p99_ms=p99,
                percentile_error=error,
            )
        )
    return out


def percentiles(
    quantiles: Sequence[float], hists: list[Histogram], exps: list[ExpHistogram | None]
) -> tuple[list[float | None], float | None]:
    """`quantiles` of the series' growths (`exps[i]` of the same series as `hists[i]`): from
    the exponential histograms when every series has one (and the bound on their relative
    error), else from the buckets (and None)."""
    known = [e for e in exps if e is not None]
    if known and len(known) == len(exps):
        merged = exphistogram.merge(known)
        if merged is not None:
            error = exphistogram.relative_error(merged.scale)
            return [exphistogram.quantile(q, merged) for q in quantiles], error
    hist = merge(hists)
    return [quantile(q, hist) for q in quantiles], None


def _key(labels: Labels, by_operation: bool) -> tuple[str, str]:
    values = dict(labels)
    return values.get("service_name", ""), values.get("span_name", "") if by_operation else ""
