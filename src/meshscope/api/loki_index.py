"""Loki's index statistics and volume (`/loki/api/v1/index/stats`, `/index/volume`): what
Grafana's Loki data source asks to show a query's size before running it, and Logs
Drilldown to list services by volume.

meshscope keeps no per-stream index to read these from, so they come from the records
(ADR 0028): the newest `INDEX_SCAN_RECORDS` matching records of the range, each once (as
the query paths read them). When the range holds more, entries and bytes are extrapolated to the
whole range from the time those records cover (Loki's own figures are estimates too); the
stream count is then the streams among them. `chunks` is 0: meshscope stores no chunks.
Bytes are the lines' UTF-8 bytes.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from meshscope.api.loki import HOUR_NS, loki_endpoint, stream_selectors
from meshscope.api.loki_params import Params, one, parse_limit, time_range
from meshscope.api.params import ParamError
from meshscope.clock import Clock, SystemClock
from meshscope.query.logql import LogExpr
from meshscope.query.logql.select import Scan, entries
from meshscope.query.promql.values import format_time
from meshscope.store.base import LabelMatcher, Storage

INDEX_SCAN_RECORDS = 100_000
"""Records a stats or volume answer reads at most (newest first)."""
DEFAULT_VOLUME_LIMIT = 100
MAX_VOLUME_LIMIT = 10_000

StreamKey = tuple[tuple[str, str], ...]


@dataclass(slots=True)
class Sample:
    """Entries and bytes per stream of a range, and the factor that scales them to it."""

    per_stream: dict[StreamKey, list[int]] = field(default_factory=dict)  # [entries, bytes]
    scale: float = 1.0

    @property
    def entries(self) -> int:
        return round(sum(n for n, _ in self.per_stream.values()) * self.scale)

    @property
    def bytes(self) -> int:
        return round(sum(b for _, b in self.per_stream.values()) * self.scale)


def sample(
    storage: Storage, matchers: tuple[LabelMatcher, ...], start_ns: int, end_ns: int
) -> Sample:
    out, oldest = Sample(), end_ns
    for entry in entries(storage.logs, LogExpr(matchers), start_ns, end_ns, Scan(),
                         limit=INDEX_SCAN_RECORDS, newest_first=True):  # fmt: skip
        counts = out.per_stream.setdefault(tuple(sorted(entry.stream.items())), [0, 0])
        counts[0] += 1
        counts[1] += len(entry.line.encode("utf-8", "surrogatepass"))
        oldest = entry.time_ns
    if sum(n for n, _ in out.per_stream.values()) >= INDEX_SCAN_RECORDS and oldest > start_ns:
        out.scale = (end_ns - start_ns) / max(end_ns - oldest, 1)
    return out


def volumes(
    found: Sample, names: list[str], by_labels: bool, limit: int
) -> list[tuple[StreamKey, int]]:
    """Bytes per group, largest first: per combination of `names`' values (streams with none
    of them are left out), or per label name (`by_labels`: the label with value "")."""
    groups: dict[StreamKey, float] = defaultdict(float)
    for key, (_, size) in found.per_stream.items():
        labels = dict(key)
        if by_labels:
            for name in names:
                if name in labels:
                    groups[((name, ""),)] += size
        else:
            group = tuple((name, labels[name]) for name in names if name in labels)
            if group:
                groups[group] += size
    ranked = sorted(groups.items(), key=lambda item: (-item[1], item[0]))
    return [(key, round(size * found.scale)) for key, size in ranked[:limit]]


def loki_index_routes(storage: Storage, clock: Clock | None = None) -> list[Route]:
    clock = clock or SystemClock()

    def selector(params: Params) -> tuple[LabelMatcher, ...]:
        if not (one(params, "query") or "").strip():
            raise ParamError("query is required (a LogQL stream selector)")
        [matchers] = stream_selectors(params, ("query",))
        return matchers

    def stats(params: Params, _: Request) -> Any:
        matchers = selector(params)
        start, end = time_range(params, clock.now_ns(), HOUR_NS)
        found = sample(storage, matchers, start, end)
        return {"streams": len(found.per_stream), "chunks": 0, "entries": found.entries,
                "bytes": found.bytes}  # fmt: skip

    def volume(params: Params, _: Request) -> Any:
        matchers = selector(params)
        start, end = time_range(params, clock.now_ns(), HOUR_NS)
        limit = parse_limit(one(params, "limit"), DEFAULT_VOLUME_LIMIT, MAX_VOLUME_LIMIT)
        aggregate_by = one(params, "aggregateBy") or "series"
        if aggregate_by not in ("series", "labels"):
            raise ParamError(f"invalid aggregateBy: {aggregate_by!r} (series or labels)")
        targets = [name.strip() for name in (one(params, "targetLabels") or "").split(",")]
        names = [name for name in targets if name] or [m.name for m in matchers]
        found = sample(storage, matchers, start, end)
        at = format_time(end // 10**6)
        result = [
            {"metric": dict(key), "value": [at, str(size)]}
            for key, size in volumes(found, list(dict.fromkeys(names)), aggregate_by == "labels",
                                     limit)
        ]  # fmt: skip
        return {"status": "success", "data": {"resultType": "vector", "result": result}}

    both = ["GET", "POST"]
    return [
        Route("/loki/api/v1/index/stats", loki_endpoint(stats), methods=both),
        Route("/loki/api/v1/index/volume", loki_endpoint(volume), methods=both),
    ]
