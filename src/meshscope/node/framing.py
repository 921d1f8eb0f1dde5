"""JSON-lines framing: read values (one per line, tolerating pretty-printed multi-line values),
write envelopes. Nothing here knows about message types."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

JsonObject = dict[str, Any]
MAX_PENDING_LINES = 1_000
"""Lines one pretty-printed value may span (an envelope takes ~10). Each new line re-parses
the pending text, so this bound keeps a runaway value's cost at ~35 ms, not seconds."""


@dataclass(frozen=True, slots=True)
class Garbage:
    """Input that is not a JSON object; reported on stderr, never fatal."""

    text: str
    reason: str


def read_values(lines: Iterable[str]) -> Iterator[JsonObject | Garbage]:
    """Yield each JSON object in `lines`, or Garbage for what cannot be one.

    A value normally fills one line. A line that starts a value but ends early (a pretty-printed
    envelope, as the seed pages show them) is joined with the following lines until the value
    is complete. If a line that is complete on its own arrives first, the pending text was
    garbage: it is reported and the new line is taken on its own.
    """
    pending = ""
    count = 0
    for line in lines:
        if not line.strip() and not pending:
            continue
        if pending:
            joined = pending + line
            value, incomplete = _parse(joined)
            if not incomplete:
                pending, count = "", 0
                yield _object_or_garbage(value, joined)
                continue
            alone, alone_incomplete = _parse(line)
            if not alone_incomplete and isinstance(alone, dict):
                yield Garbage(pending.strip(), "incomplete JSON value")
                pending, count = "", 0
                yield alone
                continue
            pending, count = joined, count + 1
            if count > MAX_PENDING_LINES:
                yield Garbage(pending[:200], "JSON value too long")
                pending, count = "", 0
            continue
        value, incomplete = _parse(line)
        if incomplete:
            pending, count = line, 1
            continue
        yield _object_or_garbage(value, line)
    if pending:
        yield Garbage(pending.strip(), "incomplete JSON value at end of input")


_INVALID = object()


def _parse(text: str) -> tuple[object, bool]:
    """(value, incomplete). `incomplete` is True when the text is a valid prefix of JSON that
    ran out; an invalid text returns (_INVALID, False)."""
    try:
        return json.loads(text), False
    except json.JSONDecodeError as error:
        stripped = text.rstrip()
        starts_value = stripped.lstrip()[:1] in ("{", "[")
        return _INVALID, starts_value and error.pos >= len(stripped)
    except RecursionError:
        return _INVALID, False


def _object_or_garbage(value: object, text: str) -> JsonObject | Garbage:
    if value is _INVALID:
        return Garbage(text.strip()[:200], "not JSON")
    if not isinstance(value, dict):
        return Garbage(text.strip()[:200], "not a JSON object")
    return value


class Output:
    """Writes one envelope per line and flushes at once."""

    def __init__(self, stdout: TextIO, stderr: TextIO) -> None:
        self._out = stdout
        self._err = stderr

    def send(self, src: str, dest: str, body: JsonObject) -> None:
        self._out.write(json.dumps({"src": src, "dest": dest, "body": body}) + "\n")
        self._out.flush()

    def warn(self, message: str) -> None:
        self._err.write(f"meshscope node: {message}\n")
        self._err.flush()
