"""Logfmt lines read as Loki reads them (`pkg/logql/log/logfmt`, go-logfmt's decoder): the
`| logfmt` parser and the level detection share it. A regex reads each pair (the scanner's
states as alternatives), so a line costs a few regex matches, not a Python step per byte."""

from __future__ import annotations

import re
from collections.abc import Iterator

_SPACE = re.compile(r"[\x00-\x20]*")
_PAIR = re.compile(
    r"""(?P<key>[^\x00-\x20="]+)(?:
        ="(?P<quoted>(?:[^"\\]|\\.)*)"                  # a quoted value, escapes as they are
      | =(?P<value>[^\x00-\x20="]*)(?=[\x00-\x20]|\Z)   # an unquoted one, up to a space
      | (?=[\x00-\x20]|\Z)                              # a key alone
    )""",
    re.VERBOSE | re.DOTALL,
)
_OPEN_QUOTE = re.compile(r'[^\x00-\x20="]+="')
_TO_SPACE = re.compile(r"[^\x00-\x20]*")
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "'": "'", "b": "\b", "f": "\f", "n": "\n",
            "r": "\r", "t": "\t"}  # fmt: skip
_HEX4 = re.compile(r"[0-9a-fA-F]{4}")


def logfmt_pairs(line: str) -> Iterator[tuple[str, str]]:
    """The pairs of a line as Loki's `logfmt.Decoder.ScanKeyval` (go-logfmt) reads them: a
    `"` in a key or a `=` or `"` in an unquoted value skips that pair; a quoted value is
    taken as it is without a backslash, else unquoted (`\\'` and raw control characters
    allowed); an unterminated quote ends the line; a key alone or `key=` gives nothing."""
    pos, size = 0, len(line)
    while True:
        pos = _SPACE.match(line, pos).end()  # type: ignore[union-attr]
        if pos >= size:
            return
        pair = _PAIR.match(line, pos)
        if pair is None:
            if _OPEN_QUOTE.match(line, pos):
                return  # an unterminated quote: nothing more on the line
            pos = _TO_SPACE.match(line, pos).end()  # type: ignore[union-attr]
            continue
        pos = pair.end()
        quoted, value = pair.group("quoted"), pair.group("value")
        if quoted is not None:
            text = _unquote(quoted) if "\\" in quoted else quoted
            if text is not None:
                yield pair.group("key"), text
        elif value:
            yield pair.group("key"), value


def _unquote(body: str) -> str | None:
    """A quoted value's escapes read (JSON's and `\\'`); None for one it cannot read."""
    out: list[str] = []
    at = 0
    while at < len(body):
        char = body[at]
        if char != "\\":
            out.append(char)
            at += 1
            continue
        kind = body[at + 1 : at + 2]
        if kind == "u" and _HEX4.fullmatch(body, at + 2, at + 6):
            out.append(chr(int(body[at + 2 : at + 6], 16)))
            at += 6
        elif kind in _ESCAPES:
            out.append(_ESCAPES[kind])
            at += 2
        else:
            return None
    return "".join(out)
