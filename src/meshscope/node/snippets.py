"""Counting span starts in a code snippet (the `manual_instrument` message)."""

from __future__ import annotations

import re

# Span-start calls of the OpenTelemetry APIs: JS/TS/Java `startSpan(`/`startActiveSpan(`,
# Python `start_span(`/`start_as_current_span(`, Go `tracer.Start(`, .NET `StartActivity(`.
SPAN_START = re.compile(
    r"(?<![\w$])(?:startSpan|startActiveSpan|start_span|start_as_current_span|StartActivity"
    r"|StartSpan|StartActiveSpan)\s*\("
    r"|\b[A-Za-z_]*[Tt]racer\s*\.\s*Start\s*\("
)


def count_span_starts(code: str) -> int:
    """Number of span-start calls in `code`."""
    return len(SPAN_START.findall(code))
