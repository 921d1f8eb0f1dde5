"""What a service mesh sees: requests at a proxy, and calls from one service to another."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple


@dataclass(frozen=True, slots=True)
class ProxyRequest:
    """One request observed by the sidecar proxy in front of `service`.

    `source` is the calling service when the proxy knows it (from an identity header or the
    peer), else "". `status_code` is the HTTP status; 5xx counts as an error.
    """

    service: str
    time_ns: int
    duration_ns: int
    status_code: int
    source: str = ""
    method: str = ""
    path: str = ""
    trace_id: str = ""
    span_id: str = ""

    @property
    def failed(self) -> bool:
        return self.status_code >= 500


UNOBSERVED = -1
"""A call's duration on a side that was not observed (0 is a measured duration)."""


class Call(NamedTuple):
    """One call from `source` to `target`: an edge of the service graph, and an access log.

    Derived from a proxied request with a known source, or from a parent->child span pair
    whose services differ. A duration is UNOBSERVED when that side was not seen (it was 0,
    so calls measured at 0 ns were left out of the latency histograms).

    A NamedTuple (immutable, fields in this order): the service graph makes ~0.7 per span,
    and a tuple is the cheapest object to make, and to turn into columns (`zip(*calls)`).
    """

    source: str
    target: str
    time_ns: int
    failed: bool
    client_duration_ns: int = UNOBSERVED
    server_duration_ns: int = UNOBSERVED
    connection_type: str = ""
    status_code: int = 0
    method: str = ""
    path: str = ""
    trace_id: str = ""
    span_id: str = ""

    @property
    def duration_ns(self) -> int:
        """The latency the caller saw when known, else the callee's."""
        return observed_duration(self.client_duration_ns, self.server_duration_ns)


def observed_duration(client_ns: int, server_ns: int) -> int:
    """The caller's duration if observed, else the callee's (0 if neither)."""
    return client_ns if client_ns >= 0 else max(server_ns, 0)
