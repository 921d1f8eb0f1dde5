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
JSON_WHITESPACE = " \t\n\r"
"""The only whitespace JSON allows around tokens (RFC 8259). str.strip() with no argument
removes more (U+0085, U+00A0, U+2028, U+001C..U+001F, ...), which JSON rejects."""


@dataclass(frozen=True, slots=True)
class Garbage:
    """Input that is not a JSON object; reported on stderr, never fatal."""

    text: str
    reason: str


def read_values(lines: Iterable[str]) -> Iterator[JsonObject | Garbage]:
    """Yield each JSON object in `lines`, or Garbage for what cannot be one.

    A value normally fills one line. A line that starts a value but ends early (a pretty-printed
    envelope, as the seed pages show them) is joined with the following lines until the value
    is complete. When the next line cannot continue the pending text (the joined text is
    neither JSON nor the start of it) or is a JSON object on its own, the pending text is
    reported as garbage and the line is read as if nothing had been pending: it may be a value,
    garbage, or the start of a new value.
    """
    pending = ""
    count = 0
    for line in lines:
        if pending:
            joined = pending + line
            value, incomplete = _parse(joined)
            if value is not _INVALID:
                pending, count = "", 0
                yield _object_or_garbage(value, joined)
                continue
            if incomplete and not isinstance(_parse(line)[0], dict):
                pending, count = joined, count + 1
                if count > MAX_PENDING_LINES:
                    yield Garbage(pending[:200], "JSON value too long")
                    pending, count = "", 0
                continue
            yield Garbage(pending.strip(JSON_WHITESPACE), "incomplete JSON value")
            pending, count = "", 0
        if not line.strip(JSON_WHITESPACE):
            continue
        value, incomplete = _parse(line)
        if incomplete:
            pending, count = line, 1
            continue
        yield _object_or_garbage(value, line)
    if pending:
        yield Garbage(pending.strip(JSON_WHITESPACE), "incomplete JSON value at end of input")


_INVALID = object()


def _parse(text: str) -> tuple[object, bool]:
    """(value, incomplete); an invalid text returns (_INVALID, incomplete). `incomplete` is True
    when the text opens an object or array and the parser reached its end (JSON whitespace
    aside) without finding an error, so more lines may complete it. Any other character after
    a complete value, even one str.strip() removes (U+2028, U+00A0, ...), is an error."""
    try:
        return json.loads(text), False
    except json.JSONDecodeError as error:
        stripped = text.rstrip(JSON_WHITESPACE)
        starts_value = stripped.lstrip(JSON_WHITESPACE)[:1] in ("{", "[")
        return _INVALID, starts_value and error.pos >= len(stripped)
    except RecursionError:
        return _INVALID, False


def _object_or_garbage(value: object, text: str) -> JsonObject | Garbage:
    if value is _INVALID:
        return Garbage(text.strip(JSON_WHITESPACE)[:200], "not JSON")
    if not isinstance(value, dict):
        return Garbage(text.strip(JSON_WHITESPACE)[:200], "not a JSON object")
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
