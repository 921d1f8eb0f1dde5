"""A scraped exposition (Prometheus text 0.0.4 or OpenMetrics 1.0) -> metric points.

Parsing is prometheus_client's (`parser.text_string_to_metric_families`, or
`openmetrics.parser` when the Content-Type says `application/openmetrics-text`). The families
become points as Prometheus stores them, with the scrape target's labels attached:
- counter -> COUNTER points named as exposed (`x_total`); gauge, untyped, info and stateset
  -> GAUGE; `x_created` samples (OpenMetrics) -> GAUGE series, as Prometheus 2.x stores them;
- classic histogram -> one HISTOGRAM point per series (labels without `le`) per scrape, with
  per-bucket (non-cumulative) counts and `_sum`/`_count` folded in; a series whose buckets
  cannot be folded (no `+Inf` bucket, no `_sum`/`_count`, decreasing or fractional counts)
  is kept as plain `_bucket`/`_sum`/`_count` COUNTER series, so nothing exposed is lost;
- summary -> SUMMARY points `x{quantile=...}` (so `/api/v1/metadata` says summary) and
  COUNTER `x_sum` / `x_count`; gauge histogram -> plain GAUGE series;
- labels: a sample label that clashes with a target label is renamed `exported_<name>`
  (Prometheus' `honor_labels: false`); empty label values are dropped;
- time: the exposed timestamp if any (ms precision, as Prometheus keeps), else the scrape's.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families as text_families
from prometheus_client.samples import Sample, Timestamp

from meshscope.ingest.checks import MAX_TIME_NS, time_fits
from meshscope.ingest.errors import DecodeError
from meshscope.model.metrics import Histogram, Labels, MetricPoint, MetricType

OPENMETRICS = "application/openmetrics-text"
NS_PER_MS = 1_000_000
_PLAIN_TYPES = {
    "counter": MetricType.COUNTER,
    "gauge": MetricType.GAUGE,
    "unknown": MetricType.GAUGE,
    "untyped": MetricType.GAUGE,
    "info": MetricType.GAUGE,
    "stateset": MetricType.GAUGE,
    "gaugehistogram": MetricType.GAUGE,
}


@dataclass(slots=True)
class Exposition:
    points: list[MetricPoint] = field(default_factory=list)
    samples: int = 0
    """Samples in the exposition, as Prometheus' `scrape_samples_scraped` counts them."""


def parse_families(text: str, content_type: str) -> list[Metric]:
    """The metric families of a body; raises DecodeError if it is not valid."""
    is_openmetrics = content_type.split(";", 1)[0].strip().lower() == OPENMETRICS
    try:
        if is_openmetrics:
            return list(openmetrics_families(text))  # type: ignore[no-untyped-call]
        return list(text_families(text))
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as error:
        # AttributeError: the OpenMetrics parser compares an integer timestamp (its Timestamp)
        # with a float one in the same group.
        kind = "OpenMetrics" if is_openmetrics else "Prometheus text format"
        raise DecodeError(f"invalid {kind} exposition: {error}"[:500]) from None


def to_points(families: Iterable[Metric], target: Labels, scrape_ns: int) -> Exposition:
    """The points of parsed families, with `target` labels attached (see the module doc)."""
    out = Exposition()
    builder = _Builder(dict(target), scrape_ns - scrape_ns % NS_PER_MS, out)
    for family in families:
        samples = [s for s in family.samples if s.native_histogram is None]
        out.samples += len(samples)
        if family.type == "histogram":
            builder.histogram(family, samples)
        elif family.type == "summary":
            builder.summary(family, samples)
        else:
            kind = _PLAIN_TYPES.get(family.type, MetricType.GAUGE)
            for sample in samples:
                created = sample.name.endswith("_created") and family.type == "counter"
                builder.add(sample, MetricType.GAUGE if created else kind, family)
    return out


def _time_ns(timestamp: float | Timestamp | None, default_ns: int) -> int:
    """An exposed timestamp in ns; DecodeError when it does not fit the store (int64 ns)."""
    if timestamp is None:
        return default_ns
    if isinstance(timestamp, Timestamp):
        time_ns = timestamp.sec * 1_000_000_000 + timestamp.nsec // NS_PER_MS * NS_PER_MS
    elif math.isfinite(timestamp) and abs(timestamp) < 2**63 / 1e9:
        time_ns = math.floor(timestamp * 1000) * NS_PER_MS
    else:
        time_ns = MAX_TIME_NS + 1
    if not time_fits(time_ns):
        raise DecodeError(f"sample timestamp {timestamp} is out of range")
    return time_ns


class _Builder:
    def __init__(self, target: dict[str, str], scrape_ns: int, out: Exposition) -> None:
        self.target = target
        self.scrape_ns = scrape_ns
        self.out = out

    def labels(self, exposed: dict[str, str], drop: str = "") -> Labels:
        target = self.target
        merged = {k: v for k, v in exposed.items() if v and k != drop and k not in target}
        for key, value in exposed.items():
            if value and key in target:  # as Prometheus: exported_<name>, prefixed until free
                name = "exported_" + key
                while name in merged or name in target:
                    name = "exported_" + name
                merged[name] = value
        merged.update(target)
        return tuple(sorted(merged.items()))

    def add(self, sample: Sample, kind: MetricType, family: Metric, name: str = "") -> None:
        self.out.points.append(
            MetricPoint(
                name or sample.name,
                self.labels(sample.labels),
                _time_ns(sample.timestamp, self.scrape_ns),
                kind,
                float(sample.value),
                None,
                family.documentation,
                family.unit,
            )
        )

    def summary(self, family: Metric, samples: list[Sample]) -> None:
        for sample in samples:
            if sample.name == family.name:
                self.add(sample, MetricType.SUMMARY, family)
            elif sample.name.endswith("_created"):
                self.add(sample, MetricType.GAUGE, family)
            else:
                self.add(sample, MetricType.COUNTER, family)

    def histogram(self, family: Metric, samples: list[Sample]) -> None:
        groups: dict[tuple[Labels, float | Timestamp | None], list[Sample]] = {}
        for sample in samples:
            if sample.name.endswith("_created"):
                self.add(sample, MetricType.GAUGE, family)
                continue
            key = (self.labels(sample.labels, drop="le"), sample.timestamp)
            groups.setdefault(key, []).append(sample)
        for (labels, timestamp), group in groups.items():
            folded = _fold(family.name, group)
            if folded is None:
                for sample in group:
                    self.add(sample, MetricType.COUNTER, family)
                continue
            self.out.points.append(
                MetricPoint(
                    family.name,
                    labels,
                    _time_ns(timestamp, self.scrape_ns),
                    MetricType.HISTOGRAM,
                    0.0,
                    folded,
                    family.documentation,
                    family.unit,
                )
            )


def _fold(name: str, samples: list[Sample]) -> Histogram | None:
    """One series' `_bucket`/`_sum`/`_count` samples as a Histogram; None if inconsistent."""
    buckets: list[tuple[float, float]] = []
    total: float | None = None
    count: float | None = None
    for sample in samples:
        suffix = sample.name[len(name) :]
        if suffix == "_bucket":
            try:
                buckets.append((float(sample.labels.get("le", "")), float(sample.value)))
            except ValueError:
                return None
        elif suffix == "_sum":
            total = float(sample.value)
        elif suffix == "_count":
            count = float(sample.value)
    buckets.sort()
    if total is None or count is None or not buckets or buckets[-1][0] != math.inf:
        return None
    cumulative = [value for _, value in buckets]
    if any(not v.is_integer() or v < 0 for v in (*cumulative, count)):
        return None
    counts = [int(b - a) for a, b in zip([0.0, *cumulative], cumulative, strict=False)]
    if any(c < 0 for c in counts) or len({le for le, _ in buckets}) != len(buckets):
        return None
    bounds = tuple(le for le, _ in buckets[:-1])
    return Histogram(bounds, tuple(counts), total, int(count))
