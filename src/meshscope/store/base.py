"""The storage protocols. Every backend implements these and passes tests/conformance/.

Each protocol is a handful of methods; query code depends on these, never on a backend.

The write contract (what every backend must honour; the pipeline relies on it):
- One writer. In the server every write comes from `pipeline.writer.BatchWriter`: its store
  thread commits each group (`Storage.write_batch`, or `write_encoded` for a backend with
  two-phase writes, `store.twophase`), and its writer thread writes derived-metric flushes
  (`MetricStore.write_points`), the spans tail sampling releases, retention (`expire`) and
  upkeep (`Maintained.maintain`). The two threads may call in at the same time: a backend
  serialises its own writes (DuckDB: one write connection behind a lock). Reads come from
  any request thread at any time, concurrently with writes.
- Durable on return. When a write method returns, what it was given survives a crash
  (kill -9) of the process; a 2xx to a client is sent only after that. A write that raises
  wrote nothing the caller can see as committed: `write_batch`/`write_encoded` are one
  transaction where the backend has transactions (a backend without them documents what a
  failure part way leaves, e.g. ClickHouse, ADR 0011). The writer then retries each request
  of a failed group alone, so a write may be called again with part of the same data;
  unless the write raised `StoreUnavailableError` (the store's server cannot be reached or
  does not answer in time): then every request of the group is refused at once (503), none
  retried.
- Unavailable. A backend with a server raises `StoreUnavailableError` from any read or
  write when that server is down or hung (bounded in time), and recovers by itself once it
  answers again; the APIs answer such reads 503.
- Order. Within a transaction, rows keep the order given; reads return spans of a trace by
  start time, ties by span id (`trace_order`: the same on every backend and every node of
  a cluster), logs and samples by time, ties in write order.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from meshscope.model import regex
from meshscope.model.attributes import AttrValue
from meshscope.model.logs import LogRecord
from meshscope.model.metrics import Labels, MetricPoint, MetricType
from meshscope.model.spans import Span, SpanKind, StatusCode

MAX_TIME_NS = 2**63 - 1


class StoreUnavailableError(RuntimeError):
    """The store's server cannot be reached, or did not answer in time; retrying later may
    work (503). The message names the server and why. A write that raised it is not
    committed (a backend without transactions may have left part of it, ADR 0011)."""


class QueryTooLargeError(ValueError):
    """A read's filter values make a statement larger than the store will parse (400)."""


def attr_text(value: AttrValue) -> str:
    """The text form an attribute value is matched by in queries (`{"http.status_code": "500"}`).

    Strings as they are, booleans as `true`/`false`, numbers as Python prints them, bytes as
    lowercase hex, lists and maps as compact JSON with sorted keys; None has no text form ("").
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_json_default)


def _json_default(value: object) -> str:
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"not an attribute value: {type(value).__name__}")


@dataclass(frozen=True, slots=True)
class TraceQuery:
    """Find traces that have at least one span matching every given condition.

    An attribute condition matches the span's attribute of that name or its resource's (as
    Jaeger matches a span or its process tags); values are compared by `attr_text`. Times
    are span starts.
    """

    service: str = ""
    operation: str = ""
    attributes: Mapping[str, str] = field(default_factory=dict)
    min_duration_ns: int = 0
    max_duration_ns: int = 0  # 0 = no upper bound
    errors_only: bool = False
    start_ns: int = 0
    end_ns: int = MAX_TIME_NS
    limit: int = 20
    status: StatusCode | None = None  # the span's status code is exactly this
    kind: SpanKind | None = None  # the span's kind is exactly this


@dataclass(frozen=True, slots=True)
class ExemplarQuery:
    """Spans to stand for span-metric series (`TraceStore.exemplars`): per series (service,
    kind, name, status) and per interval of `interval_ns` from `start_ns`, the slowest span
    that started in [start_ns, end_ns); the other fields, when set, must match exactly."""

    start_ns: int
    end_ns: int
    interval_ns: int
    service: str = ""
    name: str = ""
    kind: SpanKind | None = None
    status: StatusCode | None = None
    limit: int = 10_000


@dataclass(frozen=True, slots=True)
class SpanExemplar:
    service: str
    name: str
    kind: SpanKind
    status: StatusCode
    start_ns: int
    duration_ns: int
    trace_id: str
    span_id: str


@dataclass(frozen=True, slots=True)
class LogQuery:
    """Select log records; results come oldest first (by time; ties in the order written),
    or exactly reversed with `newest_first`.

    An attribute condition matches the record's attribute of that name, or when the record
    has none, its resource's (a record's attribute hides its resource's, as LogQL's metadata
    wins a clash with a stream label).
    """

    trace_id: str = ""
    span_id: str = ""  # lowercase hex, as stored
    service: str = ""
    attributes: Mapping[str, str] = field(default_factory=dict)
    access: bool | None = None  # True: only access logs, False: none of them, None: all
    start_ns: int = 0
    end_ns: int = MAX_TIME_NS
    limit: int = 0  # 0 = no limit
    # Every string must occur in the body (case-sensitive), like LogQL's `|= "text"`.
    body_contains: tuple[str, ...] = ()
    # Newest first (ties in reverse write order); `limit` then keeps the newest records.
    newest_first: bool = False


class MatchOp(Enum):
    EQ = "="
    NE = "!="
    RE = "=~"
    NRE = "!~"


@dataclass(frozen=True, slots=True)
class LabelMatcher:
    """A Prometheus label matcher. Regexes are RE2, fully anchored, as in Prometheus; an
    invalid one raises RegexError when the matcher is made."""

    name: str
    op: MatchOp
    value: str

    def __post_init__(self) -> None:
        if self.op in (MatchOp.RE, MatchOp.NRE):
            regex.check(self.value)

    def matches(self, value: str) -> bool:
        if self.op is MatchOp.EQ:
            return value == self.value
        if self.op is MatchOp.NE:
            return value != self.value
        hit = regex.full_match(self.value, value)
        return hit if self.op is MatchOp.RE else not hit


@dataclass(slots=True)
class Series:
    name: str
    labels: Labels
    samples: list[MetricPoint]


@dataclass(frozen=True, slots=True)
class Operation:
    service: str
    name: str
    kind: SpanKind


def trace_order(span: Span) -> tuple[int, str]:
    """The order of a trace's spans in reads: by start, equal starts by span id."""
    return span.start_ns, span.span_id


class TraceStore(Protocol):
    def write_spans(self, spans: Sequence[Span]) -> None: ...

    def get_trace(self, trace_id: str) -> list[Span]:
        """All spans of the trace in `trace_order`; [] when unknown."""
        ...

    def get_traces(self, trace_ids: Sequence[str]) -> dict[str, list[Span]]:
        """`get_trace` of many ids at once (one round trip where the backend has them): each
        known id, in the order asked, maps to what `get_trace` returns for it; unknown and
        malformed ids are left out."""
        ...

    def find_trace_ids(self, query: TraceQuery) -> list[str]:
        """Ids of matching traces, most recent first, at most `query.limit`."""
        ...

    def span_counts(self, start_ns: int = 0, end_ns: int = MAX_TIME_NS) -> dict[str, int]:
        """Number of spans per service that started in [start_ns, end_ns)."""
        ...

    def exemplars(self, query: ExemplarQuery) -> list[SpanExemplar]:
        """The slowest span per series and interval (see ExemplarQuery); ties go to the
        earlier start, then the smaller trace and span id. Ordered by service, kind, name,
        status, then start; at most `query.limit`."""
        ...


class LogStore(Protocol):
    def write_logs(self, logs: Sequence[LogRecord]) -> None: ...

    def find_logs(self, query: LogQuery) -> list[LogRecord]: ...

    def log_counts(self, start_ns: int = 0, end_ns: int = MAX_TIME_NS) -> dict[str, int]:
        """Number of log records per service in [start_ns, end_ns)."""
        ...


@dataclass(frozen=True, slots=True)
class MetricFamily:
    """A metric name and what its first written point said about it."""

    name: str
    type: MetricType
    help: str = ""
    unit: str = ""


@dataclass(frozen=True, slots=True)
class SampleColumns:
    """The float samples (points without a histogram) of one series as read-only arrays, in
    time order (equal times in write order): int64 ns times, float64 values."""

    labels: Labels
    time_ns: npt.NDArray[np.int64]
    value: npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class HistogramColumns:
    """The histogram points of one series that share the same bucket bounds, as read-only
    arrays in time order (equal times in write order). `counts[i, j]` is the count of bucket
    j at point i (not cumulative; the last bucket is +Inf)."""

    labels: Labels
    bounds: tuple[float, ...]
    time_ns: npt.NDArray[np.int64]
    counts: npt.NDArray[np.uint64]  # shape (points, len(bounds) + 1)
    sum: npt.NDArray[np.float64]
    count: npt.NDArray[np.uint64]


class MetricStore(Protocol):
    def write_points(self, points: Sequence[MetricPoint]) -> None: ...

    def select(
        self, name: str, matchers: Sequence[LabelMatcher], start_ns: int, end_ns: int
    ) -> list[Series]:
        """Series named `name` matching all matchers, in order of first write, with their
        samples in [start_ns, end_ns] in time order. Series with no sample there are left out."""
        ...

    def latest(
        self, name: str, matchers: Sequence[LabelMatcher], at_ns: int, lookback_ns: int
    ) -> list[Series]:
        """Like `select`, but each series carries only its last sample in
        [at_ns - lookback_ns, at_ns] (Prometheus's instant selection). Costs O(series), not
        O(samples): use it for "the value now" questions such as a counter's total so far."""
        ...

    def select_values(
        self, name: str, matchers: Sequence[LabelMatcher], start_ns: int, end_ns: int
    ) -> list[SampleColumns]:
        """`select` as arrays, for queries over many samples (PromQL range queries): the float
        samples in [start_ns, end_ns] of each matching series, in order of first write;
        series with none there are left out. Histogram points are not included."""
        ...

    def select_histograms(
        self, name: str, matchers: Sequence[LabelMatcher], start_ns: int, end_ns: int
    ) -> list[HistogramColumns]:
        """The histogram points in [start_ns, end_ns] of each matching series, in order of
        first write; a series' points are grouped by their bounds (one group in the usual
        case), groups in order of their first point."""
        ...

    def families(self) -> list[MetricFamily]:
        """Every metric name ever written (samples expired or not), in order of first write,
        with the type, help and unit of its first point."""
        ...


class CatalogStore(Protocol):
    """What exists: services and operations, kept in order of first appearance."""

    def note(self, operations: Sequence[Operation]) -> None:
        """Record services/operations; an Operation with name "" records just the service."""
        ...

    def services(self) -> list[str]: ...

    def operations(self, service: str) -> list[Operation]: ...


class Storage(Protocol):
    # Read-only members, so a backend's attribute may be its own (narrower) store type.
    @property
    def traces(self) -> TraceStore: ...

    @property
    def logs(self) -> LogStore: ...

    @property
    def metrics(self) -> MetricStore: ...

    @property
    def catalog(self) -> CatalogStore: ...

    def write_batch(
        self,
        spans: Sequence[Span] = (),
        logs: Sequence[LogRecord] = (),
        points: Sequence[MetricPoint] = (),
        operations: Sequence[Operation] = (),
    ) -> None:
        """Write some of every pillar (and note operations) at once: in ONE transaction where
        the backend has them. When it returns, everything is durable."""
        ...

    def expire(self, before_ns: int) -> int:
        """Delete spans (by start), log records and metric samples older than `before_ns`, in
        small steps that let writes through in between. Returns the number of rows deleted.
        Series, services and operations stay known."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class LatestOfMany(Protocol):
    """A metric store that answers `latest` for several names in one go (DuckDB: one scan of
    the samples for all of them; ClickHouse: one round of queries for all of them):
    `query.increase.latest_of` uses it where it is offered."""

    def latest_of(
        self, names: Sequence[str], matchers: Sequence[LabelMatcher], at_ns: int, lookback_ns: int
    ) -> dict[str, list[Series]]:
        """`{name: latest(name, matchers, at_ns, lookback_ns)}` for every name of `names`."""
        ...


@runtime_checkable
class InsertsMakeParts(Protocol):
    """A store where each insert into a table has a cost of its own that later work repeats
    (ClickHouse: a part per insert, merged again and again). The writer gives it the calls
    paired from spans (derived rows no request owns) at most every `paired_calls_interval_s`,
    many groups' in one insert, instead of with every group (ADR 0027), and under load
    commits groups to it at most every `storage.clickhouse.min_insert_interval_seconds`, the
    requests arriving meanwhile in the next (ADR 0030)."""

    @property
    def paired_calls_interval_s(self) -> float: ...


@runtime_checkable
class Maintained(Protocol):
    """A store with upkeep to do when the load is low (DuckDB: checkpoint a grown log)."""

    def maintain(self) -> None: ...
