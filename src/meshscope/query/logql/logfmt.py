"""Logfmt lines read as Loki reads them (`pkg/logql/log/logfmt`, go-logfmt's decoder): the
`| logfmt` parser and the level detection share it."""

from __future__ import annotations

import re
from collections.abc import Iterator


def logfmt_pairs(line: str) -> Iterator[tuple[str, str]]:
    """The pairs of a line as Loki's `logfmt.Decoder.ScanKeyval` (go-logfmt) reads them: a
    `"` in a key or a `=` or `"` in an unquoted value skips that pair; a quoted value is
    taken as it is without a backslash, else unquoted (`\'` and raw control characters
    allowed); an unterminated quote ends the line."""
    pos, size = 0, len(line)
    while pos < size:
        while pos < size and line[pos] <= " ":
            pos += 1
        if pos >= size:
            return
        start = pos
        while pos < size and line[pos] > " " and line[pos] not in '="':
            pos += 1
        if pos >= size or line[pos] <= " ":
            continue  # a key without a value
        if line[pos] == '"' or pos == start:  # a quote in a key, or `=` with no key
            pos = _skip_value(line, pos)
            continue
        key = line[start:pos]
        pos += 1  # the `=`
        if pos >= size or line[pos] <= " ":
            continue  # `key=`: empty
        if line[pos] == '"':
            end, value = _quoted(line, pos)
            if end < 0:
                return  # unterminated: nothing more on the line
            pos = end
            if value is not None:
                yield key, value
            continue
        start = pos
        while pos < size and line[pos] > " " and line[pos] not in '="':
            pos += 1
        if pos < size and line[pos] in '="':
            pos = _skip_value(line, pos)
            continue
        yield key, line[start:pos]


def _skip_value(line: str, pos: int) -> int:
    while pos < len(line) and line[pos] > " ":
        pos += 1
    return pos


_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "'": "'", "b": "\b", "f": "\f", "n": "\n",
            "r": "\r", "t": "\t"}  # fmt: skip


def _quoted(line: str, pos: int) -> tuple[int, str | None]:
    """The end of the quoted value at `pos` and the value (None: an escape it cannot read);
    -1 when the quote is not closed."""
    escaped = has_escape = False
    for at in range(pos + 1, len(line)):
        char = line[at]
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = has_escape = True
        elif char == '"':
            body = line[pos + 1 : at]
            return at + 1, _unquote(body) if has_escape else body
    return -1, None


def _unquote(body: str) -> str | None:
    out: list[str] = []
    at = 0
    while at < len(body):
        char = body[at]
        if char != "\\":
            out.append(char)
            at += 1
            continue
        kind = body[at + 1 : at + 2]
        if kind == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", body[at + 2 : at + 6]):
            out.append(chr(int(body[at + 2 : at + 6], 16)))
            at += 6
        elif kind in _ESCAPES:
            out.append(_ESCAPES[kind])
            at += 2
        else:
            return None
    return "".join(out)
