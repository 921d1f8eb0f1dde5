"""The one regex engine of the read side: RE2 (google-re2), as Prometheus, Loki and Tempo use.

RE2 matches in time linear in the input, so no pattern a client sends (`(a+)+$`) can hold
a thread for minutes the way Python's backtracking `re` does, and it speaks the syntax users
copy from those tools (`\\pL`, `(?U)`, `[[:alpha:]]`, `(?P<x>...)`). Label matchers are fully
anchored with `.` matching newlines, like Prometheus' `^(?s:...)$`; LogQL line filters
search unanchored. Here in `model` because store matchers and every query language use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Protocol

import re2

# RE2's own budget for a compiled program: a pattern that needs more (`a{1000}{1000}`) is
# refused at compile time instead of growing without bound.
MAX_PROGRAM_BYTES = 8 << 20
MAX_PATTERN_CHARS = 4096


class Match(Protocol):
    def group(self, index: int | str = 0) -> str | None: ...


class Pattern(Protocol):
    """The part of a compiled RE2 pattern the query languages use."""

    @property
    def groupindex(self) -> Mapping[str, int]: ...

    def search(self, text: str) -> Match | None: ...

    def match(self, text: str) -> Match | None: ...

    def fullmatch(self, text: str) -> Match | None: ...

    def sub(self, replacement: str, text: str) -> str: ...


class RegexError(ValueError):
    """A pattern RE2 cannot compile; the message names the pattern and the reason."""


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # RE2 would print each refused pattern to stderr
    options.max_mem = MAX_PROGRAM_BYTES
    return options


_OPTIONS = _options()


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> Any:
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as error:
        reason = error.args[0] if error.args else error
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise RegexError(str(reason)) from None


def compile_pattern(pattern: str, anchored: bool) -> Pattern:
    """`pattern` compiled by RE2: `anchored` wraps it as `^(?s:...)$` (Prometheus label
    matchers, TraceQL, LogQL label filters), otherwise `(?s:...)` for searching."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise RegexError(
            f"regular expression is {len(pattern)} characters long; at most {MAX_PATTERN_CHARS}"
        )
    wrapped = f"^(?s:{pattern})$" if anchored else f"(?s:{pattern})"
    try:
        compiled: Pattern = _compiled(wrapped)
    except RegexError as error:
        raise RegexError(f"invalid regular expression {pattern!r}: {error}") from None
    return compiled


def full_match(pattern: str, text: str) -> bool:
    """Whether the whole of `text` matches `pattern` (Prometheus `=~`). Label values repeat
    (a selector meets the same service name on every record): short ones are remembered,
    as a call into RE2 through its Python wrapper costs microseconds."""
    if len(text) <= _REMEMBERED_CHARS:
        return _remembered_match(pattern, text)
    return compile_pattern(pattern, anchored=True).fullmatch(text) is not None


_REMEMBERED_CHARS = 256


@lru_cache(maxsize=65_536)
def _remembered_match(pattern: str, text: str) -> bool:
    return compile_pattern(pattern, anchored=True).fullmatch(text) is not None


def check(pattern: str, anchored: bool = True) -> None:
    """Raise RegexError when `pattern` does not compile."""
    compile_pattern(pattern, anchored)
