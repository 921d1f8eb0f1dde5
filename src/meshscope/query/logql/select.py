"""Reading log entries for a LogQL log query from a LogStore, newest or oldest first.

What the store can filter is pushed into the `LogQuery` (the `service_name` label, equality
on labels that map to one attribute name, `|=` line filters before any `line_format`, and
`trace_id`/`span_id` equality in the selector or in label filters before any parser or
label-changing stage, which the store answers from its id columns); the full selector and
pipeline are then applied here, so pushing down only ever saves work. Log
queries with a limit read the store in pages (a time cursor, ties at the page edge re-read),
so a limit of 100 over a day of logs reads about a page, not the day.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from meshscope.model.logs import LogRecord
from meshscope.query import budget
from meshscope.query.logql.ast import (
    BoolFilter,
    Comparison,
    LabelFilter,
    LabelFilterStage,
    LineFilter,
    LineFormat,
    LogExpr,
    Stage,
)
from meshscope.query.logql.labels import (
    SERVICE_LABEL,
    SPAN_ID_LABEL,
    TRACE_ID_LABEL,
    stream_labels,
    structured_metadata,
)
from meshscope.query.logql.pipeline import run
from meshscope.store.base import LabelMatcher, LogQuery, LogStore, MatchOp

_NOT_ATTRIBUTES = frozenset({"level", "detected_level"})
MAX_PAGE = 20_000
# Ids as the store keeps them; another spelling matches no record's label, so is not pushed.
_CANONICAL = {
    TRACE_ID_LABEL: re.compile(r"[0-9a-f]{32}"),
    SPAN_ID_LABEL: re.compile(r"[0-9a-f]{16}"),
}


@dataclass(slots=True)
class Scan:
    """What a query read: lines and bytes of log records taken from the store."""

    lines: int = 0
    bytes: int = 0


@dataclass(frozen=True, slots=True)
class Entry:
    """An entry after the pipeline: its final `labels`, and the record's stream labels and
    structured metadata (to tell the three categories apart in a response)."""

    time_ns: int
    line: str
    labels: dict[str, str] = field(hash=False)
    stream: dict[str, str] = field(hash=False, default_factory=dict)
    metadata: dict[str, str] = field(hash=False, default_factory=dict)


def store_query(matchers: tuple[LabelMatcher, ...], expr: LogExpr | None = None) -> LogQuery:
    """The store-side part of a selector (and of `expr`'s leading filters)."""
    service = ""
    attributes: dict[str, str] = {}
    ids: dict[str, str] = {}
    for matcher in matchers:
        if matcher.op is not MatchOp.EQ or matcher.value == "":
            continue
        if matcher.name == SERVICE_LABEL:
            service = matcher.value
        elif matcher.name in _CANONICAL:
            ids[matcher.name] = matcher.value
        elif "_" not in matcher.name and matcher.name not in _NOT_ATTRIBUTES:
            attributes[matcher.name] = matcher.value
    contains: list[str] = []
    stages = expr.stages if expr else ()
    for stage in stages:
        if isinstance(stage, LineFormat):
            break
        if isinstance(stage, LineFilter) and stage.op == "|=" and stage.text:
            contains.append(stage.text)
    for stage in _label_preserving_prefix(stages):
        if isinstance(stage, LabelFilterStage):
            _required_ids(stage.expr, ids)
    trace_id, span_id = ids.get(TRACE_ID_LABEL, ""), ids.get(SPAN_ID_LABEL, "")
    if any(value and not _CANONICAL[name].fullmatch(value) for name, value in ids.items()):
        trace_id = span_id = ""  # not an id as stored: only an attribute could match it
    return LogQuery(
        service=service, attributes=attributes, body_contains=tuple(contains),
        trace_id=trace_id, span_id=span_id,
    )  # fmt: skip


def _label_preserving_prefix(stages: tuple[Stage, ...]) -> Iterator[Stage]:
    """The leading stages before any that can add or change labels (parsers, label_format,
    drop/keep): label filters there see the record's own labels."""
    for stage in stages:
        if not isinstance(stage, LineFilter | LineFormat | LabelFilterStage):
            return
        yield stage


def _required_ids(expr: LabelFilter, ids: dict[str, str]) -> None:
    """Adds `trace_id`/`span_id` values that every entry kept by `expr` must have."""
    if isinstance(expr, BoolFilter):
        if expr.op == "and":
            _required_ids(expr.left, ids)
            _required_ids(expr.right, ids)
    elif _is_id_equality(expr) and expr.name not in ids:
        ids[expr.name] = str(expr.value)


def _is_id_equality(expr: Comparison) -> bool:
    return (
        expr.name in _CANONICAL and expr.kind == "string" and expr.op in ("=", "==")
        and expr.value != ""
    )  # fmt: skip


def record_entry(record: LogRecord, matchers: tuple[LabelMatcher, ...]) -> Entry | None:
    """The record as an entry before any pipeline stage, if it matches the selector."""
    stream = stream_labels(record)
    metadata = structured_metadata(record, stream)
    labels = {**stream, **metadata}
    if all(m.matches(labels.get(m.name, "")) for m in matchers):
        return Entry(record.time_ns, record.body, labels, stream, metadata)
    return None


def entries(
    store: LogStore, expr: LogExpr, start_ns: int, end_ns: int, scan: Scan,
    limit: int = 0, newest_first: bool = False,
) -> Iterator[Entry]:  # fmt: skip
    """Entries of `expr` in [start_ns, end_ns) after its pipeline, at most `limit` (0: all).
    A record equal to one already read (same time, labels and line as stored: a push
    retried after it was stored) is left out, as Loki drops duplicate samples by the hash
    of the stored line; two records a `line_format` makes alike both count."""
    base = replace(store_query(expr.matchers, expr), newest_first=newest_first)
    produced = 0
    instant = -1  # the time of the entries in `given`
    given: dict[str, list[dict[str, str]]] = {}  # their lines and labels
    for record in _records(store, base, start_ns, end_ns, limit):
        if scan.lines & 255 == 0:
            budget.check()
        scan.lines += 1
        scan.bytes += len(record.body)
        entry = record_entry(record, expr.matchers)
        if entry is None:
            continue
        if record.time_ns != instant:
            instant, given = record.time_ns, {}
        same_line = given.setdefault(record.body, [])
        if entry.labels in same_line:
            continue
        same_line.append(entry.labels)
        outcome = run(expr.stages, entry.labels, record.body, record.time_ns)
        if outcome is None:
            continue
        labels, line = outcome
        yield Entry(entry.time_ns, line, labels, entry.stream, entry.metadata)
        produced += 1
        if limit and produced >= limit:
            return


def _records(
    store: LogStore, base: LogQuery, start_ns: int, end_ns: int, limit: int
) -> Iterator[LogRecord]:
    """Records of `base` in [start_ns, end_ns), in its order; paged when `limit` is set."""
    if not limit:
        yield from store.find_logs(replace(base, start_ns=start_ns, end_ns=end_ns))
        return
    # Twice the limit first (every record may pass the pipeline: filters the store can run
    # are pushed down), 4x larger pages after that (most records did not pass).
    page = min(max(2 * limit, 100), MAX_PAGE)
    low, high = start_ns, end_ns
    while low < high:
        records = store.find_logs(replace(base, start_ns=low, end_ns=high, limit=page))
        if len(records) < page:
            yield from records
            return
        page = min(4 * page, MAX_PAGE)
        edge = records[-1].time_ns
        before_edge = [r for r in records if r.time_ns != edge]
        if before_edge:  # the records at `edge` may go on in the next page: re-read them
            yield from before_edge
            low, high = (low, edge + 1) if base.newest_first else (edge, high)
        else:  # a whole page at one instant: read that instant completely
            yield from store.find_logs(replace(base, start_ns=edge, end_ns=edge + 1, limit=0))
            low, high = (low, edge) if base.newest_first else (edge + 1, high)


def label_sets(
    store: LogStore, matchers: tuple[LabelMatcher, ...], start_ns: int, end_ns: int,
    max_records: int,
) -> list[dict[str, str]]:  # fmt: skip
    """The distinct stream label sets (Loki lists no structured metadata there) of the newest
    `max_records` records in range matching `matchers` (all records when there are none)."""
    query = replace(
        store_query(matchers), start_ns=start_ns, end_ns=end_ns, limit=max_records,
        newest_first=True,
    )  # fmt: skip
    seen: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
    for record in store.find_logs(query):
        entry = record_entry(record, matchers)
        if entry is not None:
            seen.setdefault(tuple(sorted(entry.stream.items())), entry.stream)
    return list(seen.values())
