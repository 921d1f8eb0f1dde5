"""Access logs aggregated per (source, target) pair."""

from __future__ import annotations

from dataclasses import dataclass

from meshscope.model.access_logs import SOURCE_KEY, TARGET_KEY
from meshscope.model.attributes import attr_str
from meshscope.store.base import MAX_TIME_NS, LogQuery, LogStore


@dataclass(frozen=True, slots=True)
class AccessLogGroup:
    source: str
    target: str
    count: int
    errors: int = 0


def access_log_summary(
    logs: LogStore,
    source: str = "",
    target: str = "",
    start_ns: int = 0,
    end_ns: int = MAX_TIME_NS,
) -> list[AccessLogGroup]:
    """Count access logs per (source, target), in order of each pair's first appearance.
    An empty `source` or `target` matches every service."""
    wanted: dict[str, str] = {}
    if source:
        wanted[SOURCE_KEY] = source
    if target:
        wanted[TARGET_KEY] = target
    query = LogQuery(attributes=wanted, access=True, start_ns=start_ns, end_ns=end_ns)
    counts: dict[tuple[str, str], list[int]] = {}
    for record in logs.find_logs(query):
        key = (attr_str(record.attributes, SOURCE_KEY), attr_str(record.attributes, TARGET_KEY))
        entry = counts.setdefault(key, [0, 0])
        entry[0] += 1
        entry[1] += record.attributes.get("error") is True
    return [AccessLogGroup(s, t, n, e) for (s, t), (n, e) in counts.items()]
