"""How a meshscope sidecar marks what it makes, so a request is counted once when both the
sidecar and an instrumented application make a SERVER span for it.

The sidecar's spans carry the attribute `meshscope.sidecar=true`. With the context it
forwards to the application, the sidecar puts its SERVER span's id in a W3C `tracestate`
entry, `meshscope=<span id>`. OpenTelemetry SDKs copy the parent's tracestate into the spans
they start, so the application's own SERVER span carries that entry too: a SERVER span whose
`meshscope` entry names its own parent was made behind a sidecar that already counted the
request. That is decided from the span alone (spans arrive in any order), with a substring
test for the spans (nearly all) without the entry.
"""

from __future__ import annotations

from meshscope.model.spans import SpanKind

SIDECAR_ATTRIBUTE = "meshscope.sidecar"
TRACESTATE_KEY = "meshscope"
_ENTRY = TRACESTATE_KEY + "="
_MAX_ENTRIES = 32  # W3C trace context: at most 32 list members
_SERVER = int(SpanKind.SERVER)


def sidecar_trace_state(incoming: str, span_id: str) -> str:
    """The tracestate a sidecar forwards with its SERVER span `span_id`: its entry first (a
    changed entry moves to the front), the caller's other entries after it."""
    others = [
        entry
        for entry in (e.strip() for e in incoming.split(","))
        if entry and entry.partition("=")[0] != TRACESTATE_KEY
    ]
    return ",".join([_ENTRY + span_id, *others][:_MAX_ENTRIES])


def sidecar_parent(trace_state: str) -> str:
    """The span id in the `meshscope` entry of `trace_state`, or ""."""
    for entry in trace_state.split(","):
        key, _, value = entry.strip().partition("=")
        if key == TRACESTATE_KEY:
            return value.strip()
    return ""


def behind_sidecar(kind: int, parent_span_id: str, trace_state: str) -> bool:
    """Whether a span is an application's SERVER span for a request its sidecar made a
    SERVER span for (its parent): RED counts that request with the sidecar's span."""
    return (
        kind == _SERVER
        and _ENTRY in trace_state
        and bool(parent_span_id)
        and sidecar_parent(trace_state) == parent_span_id
    )
