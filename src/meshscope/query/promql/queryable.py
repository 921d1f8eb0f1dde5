"""What the PromQL engine needs from storage, and an adapter over the MetricStore protocol.

The engine sees series as Prometheus does: the metric name is the `__name__` label, and a
stored histogram series `X` appears as the classic `X_bucket{le=...}` (cumulative), `X_sum`
and `X_count` series.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from meshscope.model.metrics import Labels, MetricType
from meshscope.query.promql.values import NAME, format_le, make_labels
from meshscope.store.base import LabelMatcher, MatchOp, MetricStore

HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


@dataclass(slots=True)
class RawSeries:
    """One series in time order: labels include `__name__`; times in ms."""

    labels: Labels
    ts: list[int]
    vs: list[float]


@dataclass(frozen=True, slots=True)
class MetricInfo:
    type: str
    help: str = ""
    unit: str = ""


class Queryable(Protocol):
    def select(
        self, matchers: Sequence[LabelMatcher], start_ms: int, end_ms: int
    ) -> list[RawSeries]:
        """Series matching all matchers (`__name__` included) with samples in [start, end]."""
        ...

    def metric_names(self) -> list[str]:
        """Every metric name as PromQL sees it (histograms expanded), sorted."""
        ...

    def metadata(self) -> dict[str, MetricInfo]:
        """Type, help and unit per metric family name."""
        ...


class MetricStoreQueryable:
    """The engine's view of a MetricStore (store times are ns, engine times ms)."""

    def __init__(self, store: MetricStore) -> None:
        self.store = store

    def _stored_names(self) -> list[str]:
        return [family.name for family in self.store.families()]

    def metric_names(self) -> list[str]:
        out: set[str] = set()
        for family in self.store.families():
            if family.type is MetricType.HISTOGRAM:
                out.update(family.name + suffix for suffix in HISTOGRAM_SUFFIXES)
            else:
                out.add(family.name)
        return sorted(out)

    def metadata(self) -> dict[str, MetricInfo]:
        families = self.store.families()
        return {f.name: MetricInfo(f.type.value, f.help, f.unit) for f in families}

    def select(
        self, matchers: Sequence[LabelMatcher], start_ms: int, end_ms: int
    ) -> list[RawSeries]:
        name_matchers = [m for m in matchers if m.name == NAME]
        others = [m for m in matchers if m.name != NAME]
        exact = [m.value for m in name_matchers if m.op is MatchOp.EQ]
        if exact:
            names = exact[:1]
        else:
            names = self._stored_names()
            names += [n + s for n in names for s in HISTOGRAM_SUFFIXES]
        names = [n for n in dict.fromkeys(names) if all(m.matches(n) for m in name_matchers)]
        out: list[RawSeries] = []
        for name in names:
            out.extend(self._select_name(name, others, start_ms, end_ms))
        return out

    def _select_name(
        self, name: str, matchers: list[LabelMatcher], start_ms: int, end_ms: int
    ) -> list[RawSeries]:
        start_ns = max(start_ms * 1_000_000, -(2**63))
        end_ns = min(end_ms * 1_000_000, 2**63 - 1)
        out: list[RawSeries] = []
        for series in self.store.select(name, matchers, start_ns, end_ns):
            points = [p for p in series.samples if p.histogram is None]
            if points:
                labels = make_labels([*series.labels, (NAME, name)])
                ts = [p.time_ns // 1_000_000 for p in points]
                out.append(RawSeries(labels, ts, [p.value for p in points]))
        for suffix in HISTOGRAM_SUFFIXES:
            if name.endswith(suffix) and len(name) > len(suffix):
                base = name[: -len(suffix)]
                out.extend(_expand(self.store, base, suffix, matchers, start_ns, end_ns))
        return out


def _expand(
    store: MetricStore,
    base: str,
    suffix: str,
    matchers: list[LabelMatcher],
    start_ns: int,
    end_ns: int,
) -> list[RawSeries]:
    """The classic series `base+suffix` derived from histogram points of series `base`."""
    store_matchers = [m for m in matchers if m.name != "le"] if suffix == "_bucket" else matchers
    le_matchers = [m for m in matchers if m.name == "le"] if suffix == "_bucket" else []
    by_labels: dict[Labels, RawSeries] = {}
    for series in store.select(base, store_matchers, start_ns, end_ns):
        for point in series.samples:
            hist = point.histogram
            if hist is None:
                continue
            t = point.time_ns // 1_000_000
            pairs: list[tuple[Labels, float]]
            if suffix == "_sum":
                pairs = [((), hist.sum)]
            elif suffix == "_count":
                pairs = [((), float(hist.count))]
            else:
                pairs = [((("le", format_le(b)),), float(c)) for b, c in hist.cumulative()]
            for extra, value in pairs:
                labels = make_labels([*series.labels, *extra, (NAME, base + suffix)])
                if le_matchers and not all(m.matches(extra[0][1]) for m in le_matchers):
                    continue
                raw = by_labels.get(labels)
                if raw is None:
                    raw = by_labels[labels] = RawSeries(labels, [], [])
                raw.ts.append(t)
                raw.vs.append(value)
    return list(by_labels.values())


def series_labels(
    q: Queryable, selectors: Sequence[Sequence[LabelMatcher]], start_ms: int, end_ms: int
) -> list[Labels]:
    """Label sets of the series matching any selector (for /api/v1/series)."""
    seen: dict[Labels, None] = {}
    for matchers in selectors:
        for series in q.select(matchers, start_ms, end_ms):
            seen.setdefault(series.labels, None)
    return sorted(seen)


def label_names(
    q: Queryable, selectors: Sequence[Sequence[LabelMatcher]], start_ms: int, end_ms: int
) -> list[str]:
    names: set[str] = set()
    for labels in series_labels(q, selectors or [[_ANY_NAME]], start_ms, end_ms):
        names.update(k for k, _ in labels)
    return sorted(names)


def label_values(
    q: Queryable, name: str, selectors: Sequence[Sequence[LabelMatcher]], start_ms: int, end_ms: int
) -> list[str]:
    if name == NAME and not selectors:
        return q.metric_names()
    values: set[str] = set()
    for labels in series_labels(q, selectors or [[_ANY_NAME]], start_ms, end_ms):
        values.update(v for k, v in labels if k == name)
    return sorted(values)


_ANY_NAME = LabelMatcher(NAME, MatchOp.RE, ".+")
