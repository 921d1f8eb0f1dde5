"""`| pattern "<ip> - <_> [<time>] \"<method> <uri> <_>\" <status>"`: Loki's pattern parser
(`pkg/logql/log/pattern`), what access logs (Envoy's, nginx's) are usually read with.

A pattern is literals and captures `<name>` (`<_>` captures nothing). A leading literal must
start the line; then each capture takes the text up to the first occurrence of the literal
after it, and a capture at the end takes the rest of the line. A literal that is not found
ends the match, its capture taking the rest of the line: captures after it get nothing."""

from __future__ import annotations

import re
from dataclasses import dataclass

_CAPTURE = re.compile(r"<([A-Za-z_][A-Za-z0-9_]*)>")


class PatternError(ValueError):
    """Not a valid pattern; the message says why, as Loki's."""


@dataclass(frozen=True, slots=True)
class LinePattern:
    """Parts alternate: a literal (str) or a capture (`Capture`), never two captures in a
    row."""

    parts: tuple[str | Capture, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parts if isinstance(p, Capture) and p.name != "_")

    def matches(self, line: str) -> list[tuple[str, str]]:
        """The named captures' (name, value) pairs the line gives, in order."""
        if not line or not self.parts:
            return []
        found: list[tuple[str, str]] = []
        parts = self.parts
        first = parts[0]
        if isinstance(first, str):
            if not line.startswith(first):
                return found
            line, parts = line[len(first) :], parts[1:]
        at = 0
        while at < len(parts):
            capture = parts[at]
            assert isinstance(capture, Capture)
            if at + 1 == len(parts):  # ending on a capture: the rest of the line
                if capture.name != "_":
                    found.append((capture.name, line))
                return found
            literal = parts[at + 1]
            assert isinstance(literal, str)
            index = line.find(literal)
            if index < 0:
                if capture.name != "_":
                    found.append((capture.name, line))
                return found
            if capture.name != "_":
                found.append((capture.name, line[:index]))
            line = line[index + len(literal) :]
            at += 2
        return found


@dataclass(frozen=True, slots=True)
class Capture:
    name: str


def parse_pattern(text: str) -> LinePattern:
    """Raises PatternError as Loki's `pattern.New` refuses: no named capture, two captures in
    a row, a name captured twice."""
    parts: list[str | Capture] = []
    at = 0
    for match in _CAPTURE.finditer(text):
        if match.start() > at:
            parts.append(text[at : match.start()])
        if parts and isinstance(parts[-1], Capture):
            raise PatternError(
                f"found consecutive capture '<{parts[-1].name}>{match.group(0)}': "
                "invalid expression"
            )
        parts.append(Capture(match.group(1)))
        at = match.end()
    if at < len(text):
        parts.append(text[at:])
    pattern = LinePattern(tuple(parts))
    if not pattern.names:
        raise PatternError("at least one capture is required")
    seen: set[str] = set()
    for name in pattern.names:
        if name in seen:
            raise PatternError(f"duplicate capture name ({name}): invalid expression")
        seen.add(name)
    return pattern
