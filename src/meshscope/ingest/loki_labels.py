"""Loki stream labels as a protobuf push carries them: the text `{app="cart", env="prod"}`.

The values are Go string literals (double-quoted with backslash escapes, or backquoted raw
strings), as Loki's own parser (PromQL's label syntax) reads them.
"""

from __future__ import annotations

import re

from meshscope.ingest.errors import DecodeError

_PAIR = re.compile(
    r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*("(?:[^"\\\n]|\\.)*"|`[^`]*`)\s*(,|$)', re.DOTALL
)
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}|.)", re.DOTALL)
_SIMPLE = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_SIMPLE.update({"\\": "\\", '"': '"', "'": "'"})


def unquote(literal: str) -> str:
    """The value of a Go string literal (`"a\\"b"` or a raw `` `a\\b` ``); ValueError if bad."""
    if len(literal) >= 2 and literal[0] == literal[-1] == "`":
        return literal[1:-1]
    if len(literal) < 2 or literal[0] != '"' or literal[-1] != '"':
        raise ValueError(f"not a quoted string: {literal[:40]!r}")
    return _ESCAPE.sub(_unescape_one, literal[1:-1])


def _unescape_one(match: re.Match[str]) -> str:
    code = match.group(1)
    if code in _SIMPLE:
        return _SIMPLE[code]
    if code[0] in "uU":
        point = int(code[1:], 16)
        # As Go's strconv: a surrogate or a code point past U+10FFFF is no character.
        if 0xD800 <= point <= 0xDFFF or point > 0x10FFFF:
            raise ValueError(f"escape \\{code} is not a valid Unicode character")
        return chr(point)
    if code[0] == "x":
        return chr(int(code[1:], 16))
    if len(code) == 3 and code.isdigit():
        return chr(int(code, 8))
    raise ValueError(f"unknown escape sequence \\{code}")


def parse_stream_labels(text: str) -> dict[str, str]:
    """`{a="b", c="d"}` -> {"a": "b", "c": "d"}; DecodeError naming the problem if invalid."""
    body = text.strip()
    if not body.startswith("{") or not body.endswith("}"):
        raise DecodeError(f'invalid stream labels {text[:80]!r}: expected {{name="value", ...}}')
    inner, labels, offset = body[1:-1], {}, 0
    while offset < len(inner) and not inner[offset:].isspace():
        match = _PAIR.match(inner, offset)
        if match is None:
            excerpt = inner[offset : offset + 40]
            raise DecodeError(f"invalid stream labels {text[:80]!r} near {excerpt!r}")
        try:
            labels[match.group(1)] = unquote(match.group(2))
        except ValueError as error:
            raise DecodeError(f"invalid stream labels {text[:80]!r}: {error}") from None
        offset = match.end()
    return labels
