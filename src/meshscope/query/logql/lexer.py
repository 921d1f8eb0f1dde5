"""LogQL tokens: strings (Go quoted or raw), names, numbers, durations and operators."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum


class LogQLError(ValueError):
    """The query is not (supported) LogQL; the message says what and where (HTTP 400)."""


class Kind(Enum):
    STRING = "string"
    NAME = "name"
    NUMBER = "number"
    DURATION = "duration"
    OP = "operator"
    EOF = "end of query"


@dataclass(frozen=True, slots=True)
class Token:
    kind: Kind
    text: str  # for STRING, the unquoted value
    pos: int  # 0-based offset into the query

    def describe(self) -> str:
        if self.kind is Kind.EOF:
            return "end of query"
        if self.kind is Kind.STRING:
            return f"string {self.text!r}"
        return repr(self.text)


# Longest first, so `|=` wins over `|` and `!~` over `!`.
_OPERATORS: tuple[str, ...] = ("|=", "|~", "!=", "!~", "=~", "==", ">=", "<=", "{", "}")
_OPERATORS += ("(", ")", "[", "]", ",", "|", "=", ">", "<", "+", "-", "*", "/", "%", "^")
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h|d|w|y))+")
_NUMBER = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_DIGITS = frozenset("0123456789")
_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}|.)", re.DOTALL)
_SIMPLE = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_SIMPLE.update({"\\": "\\", '"': '"', "'": "'"})
_DURATION_UNITS_NS = {"ns": 1, "us": 10**3, "µs": 10**3, "ms": 10**6, "s": 10**9}
_DURATION_UNITS_NS.update({"m": 60 * 10**9, "h": 3600 * 10**9, "d": 86400 * 10**9})
_DURATION_UNITS_NS.update({"w": 7 * 86400 * 10**9, "y": 365 * 86400 * 10**9})
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d|w|y)")


def duration_ns(text: str) -> int | None:
    """A Go/Prometheus duration (`1h30m`, `250ms`, `1.5s`) in ns; None if not one."""
    if not _DURATION.fullmatch(text):
        return None
    total = 0.0
    for amount, unit in _DURATION_PART.findall(text):
        total += float(amount) * _DURATION_UNITS_NS[unit]
    return round(total)


def tokenize(query: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(query)
    while i < n:
        ch = query[i]
        if ch.isspace():
            i += 1
        elif ch == "#":  # LogQL allows comments to the end of the line
            end = query.find("\n", i)
            i = n if end < 0 else end
        elif ch in '"`':
            text, end = _string(query, i)
            tokens.append(Token(Kind.STRING, text, i))
            i = end
        # ASCII digits only, like Loki's lexer: str.isdigit() takes `¹` too, which no number
        # pattern matches.
        elif ch in _DIGITS or (ch == "." and query[i + 1 : i + 2] in _DIGITS):
            match = _DURATION.match(query, i)
            if match and not _NAME.match(query, match.end()):
                tokens.append(Token(Kind.DURATION, match.group(), i))
            else:
                match = _NUMBER.match(query, i)
                assert match is not None
                tokens.append(Token(Kind.NUMBER, match.group(), i))
            i = match.end()
        elif match := _NAME.match(query, i):
            tokens.append(Token(Kind.NAME, match.group(), i))
            i = match.end()
        else:
            op = next((op for op in _OPERATORS if query.startswith(op, i)), None)
            if op is None:
                raise LogQLError(f"parse error at position {i + 1}: unexpected character {ch!r}")
            tokens.append(Token(Kind.OP, op, i))
            i += len(op)
    tokens.append(Token(Kind.EOF, "", n))
    return tokens


def unquote(quoted: str) -> str:
    """A whole Go-quoted or raw string token's value."""
    text, end = _string(quoted, 0)
    if end != len(quoted):
        raise LogQLError(f"invalid string {quoted!r}")
    return text


def _string(query: str, start: int) -> tuple[str, int]:
    quote = query[start]
    i = start + 1
    while i < len(query):
        ch = query[i]
        if ch == quote:
            raw = query[start + 1 : i]
            if quote == "`":
                return raw, i + 1
            try:
                return _ESCAPE.sub(_unescape, raw), i + 1
            except ValueError as error:
                raise LogQLError(f"parse error at position {start + 1}: {error}") from None
        if ch == "\\" and quote == '"':
            i += 2
            continue
        if ch == "\n" and quote == '"':
            break
        i += 1
    raise LogQLError(f"parse error at position {start + 1}: unterminated string")


def _unescape(match: re.Match[str]) -> str:
    code = match.group(1)
    if code in _SIMPLE:
        return _SIMPLE[code]
    if code[0] in "xuU" and len(code) > 1:
        return chr(int(code[1:], 16))
    if len(code) == 3 and code.isdigit():
        return chr(int(code, 8))
    raise ValueError(f"unknown escape sequence \\{code} in string")
