"""W3C Trace Context identifiers and the `traceparent` header, defined once.

Spec: https://www.w3.org/TR/trace-context/#traceparent-header
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

TRACE_ID_HEX_LEN = 32
SPAN_ID_HEX_LEN = 16
INVALID_TRACE_ID = "0" * TRACE_ID_HEX_LEN
INVALID_SPAN_ID = "0" * SPAN_ID_HEX_LEN
FLAG_SAMPLED = 0x01

_HEX = re.compile(r"^[0-9a-f]+$")
_TRACEPARENT = re.compile(
    r"^(?P<version>[0-9a-f]{2})-(?P<trace_id>[0-9a-f]{32})-(?P<span_id>[0-9a-f]{16})"
    r"-(?P<flags>[0-9a-f]{2})(?P<rest>-.*)?$"
)


def new_trace_id() -> str:
    """A random 128-bit W3C trace id, 32 lowercase hex characters, never all zero."""
    while True:
        value = secrets.token_hex(16)
        if value != INVALID_TRACE_ID:
            return value


def new_span_id() -> str:
    """A random 64-bit W3C span id, 16 lowercase hex characters, never all zero."""
    while True:
        value = secrets.token_hex(8)
        if value != INVALID_SPAN_ID:
            return value


def is_valid_trace_id(value: str) -> bool:
    return len(value) == TRACE_ID_HEX_LEN and bool(_HEX.match(value)) and value != INVALID_TRACE_ID


def is_valid_span_id(value: str) -> bool:
    return len(value) == SPAN_ID_HEX_LEN and bool(_HEX.match(value)) and value != INVALID_SPAN_ID


@dataclass(frozen=True, slots=True)
class TraceParent:
    """The parsed `traceparent` header: which trace and which parent span a request continues."""

    trace_id: str
    span_id: str
    flags: int = FLAG_SAMPLED
    version: int = 0

    @property
    def sampled(self) -> bool:
        return bool(self.flags & FLAG_SAMPLED)

    def format(self) -> str:
        """Always written as version 00, as the spec requires of version-00 implementations."""
        return f"00-{self.trace_id}-{self.span_id}-{self.flags:02x}"


def parse_traceparent(header: str | None) -> TraceParent | None:
    """Parse a `traceparent` header; None when it is absent or invalid (then start a new trace).

    Follows the spec's rules: version ff is invalid, version 00 has exactly four fields, a higher
    version may carry more fields after the flags, all-zero ids are invalid, hex is lowercase.
    """
    if header is None:
        return None
    match = _TRACEPARENT.match(header.strip())
    if match is None:
        return None
    version = int(match["version"], 16)
    if version == 0xFF:
        return None
    if version == 0 and match["rest"] is not None:
        return None
    trace_id, span_id = match["trace_id"], match["span_id"]
    if trace_id == INVALID_TRACE_ID or span_id == INVALID_SPAN_ID:
        return None
    return TraceParent(trace_id, span_id, int(match["flags"], 16), version)
