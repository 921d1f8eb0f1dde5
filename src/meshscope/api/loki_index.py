"""Loki's index statistics and volume (`/loki/api/v1/index/stats`, `/index/volume`,
`/index/volume_range`): what Grafana's Loki data source asks to show a query's size before
running it, and Logs Drilldown to list services by volume.

meshscope keeps no per-stream index to read these from, so they come from the records
(ADR 0028): the newest `INDEX_SCAN_RECORDS` matching records of the range, each once (as
the query paths read them). When the range holds more, entries and bytes are extrapolated to the
whole range from the time those records cover (Loki's own figures are estimates too); the
stream count is then the streams among them. `chunks` is 0: meshscope stores no chunks.
Bytes are the lines' UTF-8 bytes. `volume_range` answers each step's interval from the same
one scan when the range holds no more records than that; past it, each interval the scan did
not cover is sampled alone, with a share of the bound (`interval_samples`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from starlette.requests import Request
from starlette.routing import Route

from meshscope.api.loki import HOUR_NS, MAX_POINTS, loki_endpoint
from meshscope.api.loki_params import Params, one, parse_duration, parse_limit, time_range
from meshscope.api.params import ParamError
from meshscope.clock import Clock, SystemClock
from meshscope.query import budget
from meshscope.query.logql import LogExpr, parse
from meshscope.query.logql.labels import label_string
from meshscope.query.logql.select import Entry, Scan, entries
from meshscope.query.promql.values import format_time
from meshscope.store.base import LabelMatcher, Storage

INDEX_SCAN_RECORDS = 100_000
"""Records a stats or volume answer reads at most (newest first)."""
MIN_INTERVAL_RECORDS = 100
"""Records `volume_range` reads at least per interval, however many intervals it has."""
DEFAULT_VOLUME_LIMIT = 100
MAX_VOLUME_LIMIT = 10_000
MS = 10**6

StreamKey = tuple[tuple[str, str], ...]


@dataclass(slots=True)
class Sample:
    """Entries and bytes per stream of a range, and the factor that scales them to it."""

    per_stream: dict[StreamKey, list[int]] = field(default_factory=dict)  # [entries, bytes]
    scale: float = 1.0
    count: int = 0
    oldest_ns: int = 0

    @property
    def entries(self) -> int:
        return round(sum(n for n, _ in self.per_stream.values()) * self.scale)

    @property
    def bytes(self) -> int:
        return round(sum(b for _, b in self.per_stream.values()) * self.scale)

    def add(self, entry: Entry) -> None:
        """One more entry, older than those before."""
        counts = self.per_stream.setdefault(tuple(sorted(entry.stream.items())), [0, 0])
        counts[0] += 1
        counts[1] += len(entry.line.encode("utf-8", "surrogatepass"))
        self.count += 1
        self.oldest_ns = entry.time_ns

    def close(self, start_ns: int, end_ns: int, bound: int) -> Sample:
        """Scaled to [start_ns, end_ns) when it holds `bound` entries (the newest of the
        range, maybe not all), by the share of the range they cover."""
        if self.count >= bound and self.oldest_ns > start_ns:
            self.scale = (end_ns - start_ns) / max(end_ns - self.oldest_ns, 1)
        return self


def sample(
    storage: Storage, matchers: tuple[LabelMatcher, ...], start_ns: int, end_ns: int,
    bound: int,
) -> Sample:  # fmt: skip
    """The newest `bound` matching records of [start_ns, end_ns); past that, scaled to the
    range by the share of it they cover."""
    out = Sample()
    for entry in entries(storage.logs, LogExpr(matchers), start_ns, end_ns, Scan(),
                         limit=bound, newest_first=True):  # fmt: skip
        out.add(entry)
    return out.close(start_ns, end_ns, bound)


class Grouping(NamedTuple):
    """How volumes are grouped: by the values of `names` or, `by_labels`, per label name."""

    names: list[str]
    by_labels: bool
    limit: int


def group_name(key: StreamKey, by_labels: bool) -> str:
    """A group as Loki names it, which orders equal volumes: the label name, or the label
    set as Loki writes one (`{a="x", b="y"}`)."""
    return key[0][0] if by_labels else label_string(sorted(key))


def volumes(found: Sample, grouping: Grouping) -> list[tuple[StreamKey, int]]:
    """Bytes per group, largest first (ties by `group_name`), at most `grouping.limit`: per
    combination of the names' values (streams with none of them are left out), or per label
    name (the label with value "")."""
    groups: dict[StreamKey, float] = defaultdict(float)
    for key, (_, size) in found.per_stream.items():
        labels = dict(key)
        if grouping.by_labels:
            for name in grouping.names:
                if name in labels:
                    groups[((name, ""),)] += size
        else:
            group = tuple((name, labels[name]) for name in grouping.names if name in labels)
            if group:
                groups[group] += size
    by = grouping.by_labels
    ranked = sorted(groups.items(), key=lambda item: (-item[1], group_name(item[0], by)))
    return [(key, round(size * found.scale)) for key, size in ranked[: grouping.limit]]


class Interval(NamedTuple):
    """One step of `volume_range`: its records' range, and the time its sample is at."""

    start_ns: int
    end_ns: int
    at_ms: int


def intervals(start_ns: int, end_ns: int, step_ns: int) -> list[Interval]:
    """[start, end] cut at the multiples of `step`, as Loki's `util.ForInterval` (with
    `endTimeInclusive`) cuts a volume range, in milliseconds: the first interval starts at
    `start`, the last ends at `end`, each other [s, s + step) is answered at s + step - 1 ms.
    Records are counted in [s, s + step) (the last up to `end`, exclusive as elsewhere)."""
    start_ms, end_ms, step_ms = start_ns // MS, -(-end_ns // MS), step_ns // MS
    if step_ms <= 0:  # a step under 1 ms: Loki's one interval
        return [Interval(start_ns, end_ns, end_ms)]
    out: list[Interval] = []
    low = start_ms - start_ms % step_ms
    while low < end_ms:
        high = low + step_ms
        last = high >= end_ms
        out.append(Interval(max(low * MS, start_ns), end_ns if last else high * MS,
                            end_ms if last else high - 1))  # fmt: skip
        low = high
    return out


def range_step(params: Params, start_ns: int, end_ns: int) -> int:
    """`step` (float seconds or a duration) in ns, by default Loki's `max(floor(range / 250),
    1)` s; 400 for one that is not positive or gives more than MAX_POINTS intervals."""
    text = one(params, "step")
    step = (
        parse_duration(text, "step")
        if text
        else max(1, (end_ns - start_ns) // (250 * 10**9)) * 10**9
    )
    if (end_ns - start_ns) // step > MAX_POINTS:
        raise ParamError(
            "exceeded maximum resolution of 11,000 points per timeseries. Try increasing the "
            "value of the step parameter"
        )
    return step


def interval_samples(
    storage: Storage, matchers: tuple[LabelMatcher, ...], cuts: list[Interval]
) -> list[Sample]:
    """A sample of each interval. One scan reads the newest `INDEX_SCAN_RECORDS` records of
    the whole range: when that is all of them (or the interval of the oldest holds its share),
    those intervals are answered from it; each older interval is then sampled alone, its
    newest `max(INDEX_SCAN_RECORDS // intervals, MIN_INTERVAL_RECORDS)` records
    extrapolated to it. So a range of fewer records costs one scan, exact; a larger one at
    most about twice `INDEX_SCAN_RECORDS` records (and a store query per older interval)."""
    bound = max(INDEX_SCAN_RECORDS // len(cuts), MIN_INTERVAL_RECORDS)
    samples = [Sample() for _ in cuts]
    read, at = 0, len(cuts) - 1
    for entry in entries(storage.logs, LogExpr(matchers), cuts[0].start_ns, cuts[-1].end_ns,
                         Scan(), limit=INDEX_SCAN_RECORDS, newest_first=True):  # fmt: skip
        while entry.time_ns < cuts[at].start_ns:
            at -= 1
        samples[at].add(entry)
        read += 1
    if read < INDEX_SCAN_RECORDS:
        return samples
    if samples[at].count >= bound:  # the newest records of that interval, enough of them
        samples[at].close(cuts[at].start_ns, cuts[at].end_ns, bound)
        at -= 1
    for older in range(at, -1, -1):  # not read, or maybe not all of it
        budget.check()
        cut = cuts[older]
        samples[older] = sample(storage, matchers, cut.start_ns, cut.end_ns, bound)
    return samples


def volume_range_result(
    storage: Storage, matchers: tuple[LabelMatcher, ...], grouping: Grouping,
    cuts: list[Interval],
) -> dict[str, Any]:  # fmt: skip
    """Each interval's volumes (`limit` groups of its sample) as one series per group, the
    series ordered by their first sample, largest first, as Loki's `toPrometheusData`: a
    vector when no series has more than one sample, else a matrix."""
    series: dict[StreamKey, list[tuple[int, int]]] = {}
    found = interval_samples(storage, matchers, cuts) if cuts else []
    for cut, part in zip(cuts, found, strict=True):
        for key, size in volumes(part, grouping):
            series.setdefault(key, []).append((cut.at_ms, size))
    by = grouping.by_labels
    ranked = sorted(series.items(), key=lambda item: (-item[1][0][1], group_name(item[0], by)))
    if all(len(points) == 1 for points in series.values()):
        result = [{"metric": dict(key), "value": [format_time(points[0][0]), str(points[0][1])]}
                  for key, points in ranked]  # fmt: skip
        return {"resultType": "vector", "result": result}
    return {"resultType": "matrix", "result": [
        {"metric": dict(key), "values": [[format_time(at), str(size)] for at, size in points]}
        for key, points in ranked
    ]}  # fmt: skip


def parse_selector(text: str) -> tuple[LabelMatcher, ...]:
    """The matchers of a stream selector; 400 for anything else (a pipeline, a metric)."""
    expr = parse(text)
    if not isinstance(expr, LogExpr) or expr.stages:
        raise ParamError(f"invalid query: {text!r} is not a stream selector")
    return expr.matchers


def stream_selector(params: Params) -> tuple[LabelMatcher, ...]:
    """The matchers of `query` (its first value, as Loki reads a form), a stream selector
    that is required; 400 if it is missing or has a pipeline."""
    text = one(params, "query")
    if not text.strip():
        raise ParamError("query is required (a LogQL stream selector)")
    return parse_selector(text)


def grouping_of(params: Params, matchers: tuple[LabelMatcher, ...]) -> Grouping:
    """`limit` (0 is the default, as in Loki), `aggregateBy` and `targetLabels` (default:
    the selector's label names)."""
    text = one(params, "limit")
    limit = parse_limit("" if text == "0" else text, DEFAULT_VOLUME_LIMIT, MAX_VOLUME_LIMIT)
    aggregate_by = one(params, "aggregateBy") or "series"
    if aggregate_by not in ("series", "labels"):
        raise ParamError(f"invalid aggregateBy: {aggregate_by!r} (series or labels)")
    targets = [name.strip() for name in (one(params, "targetLabels") or "").split(",")]
    names = [name for name in targets if name] or [m.name for m in matchers]
    return Grouping(list(dict.fromkeys(names)), aggregate_by == "labels", limit)


def loki_index_routes(storage: Storage, clock: Clock | None = None) -> list[Route]:
    clock = clock or SystemClock()

    def stats(params: Params, _: Request) -> Any:
        matchers = stream_selector(params)
        start, end = time_range(params, clock.now_ns(), HOUR_NS)
        found = sample(storage, matchers, start, end, INDEX_SCAN_RECORDS)
        return {"streams": len(found.per_stream), "chunks": 0, "entries": found.entries,
                "bytes": found.bytes}  # fmt: skip

    def volume(params: Params, _: Request) -> Any:
        matchers = stream_selector(params)
        start, end = time_range(params, clock.now_ns(), HOUR_NS)
        grouping = grouping_of(params, matchers)
        found = sample(storage, matchers, start, end, INDEX_SCAN_RECORDS)
        at = format_time(end // MS)
        result = [{"metric": dict(key), "value": [at, str(size)]}
                  for key, size in volumes(found, grouping)]  # fmt: skip
        return {"status": "success", "data": {"resultType": "vector", "result": result}}

    def volume_range(params: Params, _: Request) -> Any:
        matchers = stream_selector(params)
        start, end = time_range(params, clock.now_ns(), HOUR_NS)
        grouping = grouping_of(params, matchers)
        cuts = intervals(start, end, range_step(params, start, end))
        return {"status": "success",
                "data": volume_range_result(storage, matchers, grouping, cuts)}  # fmt: skip

    both = ["GET", "POST"]
    return [
        Route("/loki/api/v1/index/stats", loki_endpoint(stats), methods=both),
        Route("/loki/api/v1/index/volume", loki_endpoint(volume), methods=both),
        Route("/loki/api/v1/index/volume_range", loki_endpoint(volume_range), methods=both),
    ]
