"""JSON-lines framing: read values (one per line, tolerating pretty-printed multi-line values),
write envelopes. Nothing here knows about message types."""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

JsonObject = dict[str, Any]
MAX_PENDING_LINES = 1_000
"""Lines one pretty-printed value may span (an envelope takes ~10)."""
MAX_PENDING_PARSE = 32 << 20
"""Characters parsed, in all, while a pretty-printed value is pending: each new line re-parses
the pending text, so wide lines made this quadratic (1,000 lines of 5,000 characters held the
next reply 5.5 s). ~50 ms of parsing; a value on one line of any width is parsed once."""
MAX_INT_DIGITS = 4_300
"""Python's limit for converting digits to an int (longer ones raised ValueError, which ended
the node)."""
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
    count = parsed = 0
    for line in lines:
        if pending:
            joined = pending + line
            value, incomplete = _parse(joined)
            if value is not _INVALID:
                pending, count = "", 0
                yield _object_or_garbage(value, joined)
                continue
            if incomplete and not isinstance(_parse(line)[0], dict):
                pending, count, parsed = joined, count + 1, parsed + len(joined)
                if count > MAX_PENDING_LINES or parsed > MAX_PENDING_PARSE:
                    yield Garbage(pending[:200], "JSON value too long")
                    pending, count = "", 0
                continue
            yield Garbage(pending.strip(JSON_WHITESPACE), "incomplete JSON value")
            pending, count = "", 0
        if not line.strip(JSON_WHITESPACE):
            continue
        value, incomplete = _parse(line)
        if incomplete:
            pending, count, parsed = line, 1, len(line)
            continue
        yield _object_or_garbage(value, line)
    if pending:
        yield Garbage(pending.strip(JSON_WHITESPACE), "incomplete JSON value at end of input")


_INVALID = object()


@dataclass(frozen=True, slots=True)
class Literal:
    """A JSON number Python cannot hold as it is (past a double's range, or past
    `MAX_INT_DIGITS` digits), kept as its text: no field takes it (neither a number nor a
    string: code 12), and a `msg_id` is echoed as written (`Output` writes it back bare)."""

    text: str


def _int(text: str) -> int | Literal:
    return int(text) if len(text) <= MAX_INT_DIGITS else Literal(text)


def _float(text: str) -> float | Literal:
    value = float(text)
    return value if math.isfinite(value) else Literal(text)


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN, Infinity, -Infinity (RFC 8259)


def _parse(text: str) -> tuple[object, bool]:
    """(value, incomplete); an invalid text returns (_INVALID, incomplete). `incomplete` is True
    when the text opens an object or array and the parser reached its end (JSON whitespace
    aside) without finding an error, so more lines may complete it. Any other character after
    a complete value, even one str.strip() removes (U+2028, U+00A0, ...), is an error."""
    try:
        value = json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_not_json)
        return value, False
    except json.JSONDecodeError as error:
        stripped = text.rstrip(JSON_WHITESPACE)
        starts_value = stripped.lstrip(JSON_WHITESPACE)[:1] in ("{", "[")
        return _INVALID, starts_value and error.pos >= len(stripped)
    except (RecursionError, ValueError):
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
        literals: dict[str, str] = {}
        for key, value in body.items():  # a msg_id echoed in `in_reply_to`
            if isinstance(value, Literal):
                marker = f"\0{secrets.token_hex(8)}"
                literals[json.dumps(marker)] = value.text
                body = {**body, key: marker}
        line = json.dumps({"src": src, "dest": dest, "body": body}, allow_nan=False)
        for marker, text in literals.items():
            line = line.replace(marker, text, 1)
        self._out.write(line + "\n")
        self._out.flush()

    def warn(self, message: str) -> None:
        self._err.write(f"meshscope node: {message}\n")
        self._err.flush()
