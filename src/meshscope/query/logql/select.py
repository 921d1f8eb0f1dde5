"""Reading log entries for a LogQL log query from a LogStore, newest or oldest first.

What the store can filter is pushed into the `LogQuery` (the `service_name` label, equality
on labels that map to one attribute name, `|=` line filters before any `line_format`); the
full selector and pipeline are then applied here, so pushing down only ever saves work. Log
queries with a limit read the store in pages (a time cursor, ties at the page edge re-read),
so a limit of 100 over a day of logs reads about a page, not the day.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from meshscope.model.logs import LogRecord
from meshscope.query.logql.ast import LineFilter, LineFormat, LogExpr
from meshscope.query.logql.labels import SERVICE_LABEL, record_labels
from meshscope.query.logql.pipeline import run
from meshscope.store.base import LabelMatcher, LogQuery, LogStore, MatchOp

_NOT_ATTRIBUTES = frozenset({"level", "detected_level"})
MAX_PAGE = 20_000


@dataclass(slots=True)
class Scan:
    """What a query read: lines and bytes of log records taken from the store."""

    lines: int = 0
    bytes: int = 0


@dataclass(frozen=True, slots=True)
class Entry:
    time_ns: int
    line: str
    labels: dict[str, str] = field(hash=False)


def store_query(matchers: tuple[LabelMatcher, ...], expr: LogExpr | None = None) -> LogQuery:
    """The store-side part of a selector (and of `expr`'s leading `|=` filters)."""
    service = ""
    attributes: dict[str, str] = {}
    for matcher in matchers:
        if matcher.op is not MatchOp.EQ or matcher.value == "":
            continue
        if matcher.name == SERVICE_LABEL:
            service = matcher.value
        elif "_" not in matcher.name and matcher.name not in _NOT_ATTRIBUTES:
            attributes[matcher.name] = matcher.value
    contains: list[str] = []
    for stage in expr.stages if expr else ():
        if isinstance(stage, LineFormat):
            break
        if isinstance(stage, LineFilter) and stage.op == "|=" and stage.text:
            contains.append(stage.text)
    return LogQuery(service=service, attributes=attributes, body_contains=tuple(contains))


def matching_labels(record: LogRecord, matchers: tuple[LabelMatcher, ...]) -> dict[str, str] | None:
    labels = record_labels(record)
    if all(m.matches(labels.get(m.name, "")) for m in matchers):
        return labels
    return None


def entries(
    store: LogStore, expr: LogExpr, start_ns: int, end_ns: int, scan: Scan,
    limit: int = 0, newest_first: bool = False,
) -> Iterator[Entry]:  # fmt: skip
    """Entries of `expr` in [start_ns, end_ns) after its pipeline, at most `limit` (0: all)."""
    base = replace(store_query(expr.matchers, expr), newest_first=newest_first)
    produced = 0
    for record in _records(store, base, start_ns, end_ns, limit):
        scan.lines += 1
        scan.bytes += len(record.body)
        labels = matching_labels(record, expr.matchers)
        if labels is None:
            continue
        outcome = run(expr.stages, labels, record.body)
        if outcome is None:
            continue
        yield Entry(record.time_ns, outcome[1], outcome[0])
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
    page = min(max(2 * limit, 1000), MAX_PAGE)
    low, high = start_ns, end_ns
    while low < high:
        records = store.find_logs(replace(base, start_ns=low, end_ns=high, limit=page))
        if len(records) < page:
            yield from records
            return
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
    """The distinct label sets of the newest `max_records` records in range matching
    `matchers` (all records when there are none)."""
    query = replace(
        store_query(matchers), start_ns=start_ns, end_ns=end_ns, limit=max_records,
        newest_first=True,
    )  # fmt: skip
    seen: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
    for record in store.find_logs(query):
        labels = matching_labels(record, matchers)
        if labels is not None:
            seen.setdefault(tuple(sorted(labels.items())), labels)
    return list(seen.values())
