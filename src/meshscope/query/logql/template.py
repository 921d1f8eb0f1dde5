"""The Go-template subset of `| line_format` and `| label_format`.

An action is `{{ .label }}`, `{{ __line__ }}`, `{{ __timestamp__ }}` (RFC 3339, UTC) or a
call of one of `FUNCTIONS` on such values and quoted strings, as in Grafana's trace-to-logs
query `{{ contains "<trace id>" __line__ }}`. `{{-` and `-}}` trim the whitespace next to
them, as in Go. Anything else (pipes, variables, `if`/`range`, other functions) is refused
with a LogQLError naming it, so the API answers 400.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from meshscope.query.logql.lexer import LogQLError, unquote

LINE = "__line__"
TIMESTAMP = "__timestamp__"
_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.DOTALL)
_WORD = re.compile(r'\s*("(?:[^"\\]|\\.)*"|`[^`]*`|[^\s"`]+)', re.DOTALL)
_FIELD = re.compile(r"\.[a-zA-Z_][a-zA-Z0-9_]*")


def _bool(value: bool) -> str:
    return "true" if value else "false"


FUNCTIONS: dict[str, tuple[int, Callable[..., str]]] = {
    # Sprig's argument order: the string searched comes last.
    "contains": (2, lambda sub, s: _bool(sub in s)),
    "hasPrefix": (2, lambda prefix, s: _bool(s.startswith(prefix))),
    "hasSuffix": (2, lambda suffix, s: _bool(s.endswith(suffix))),
    "lower": (1, str.lower),
    "ToLower": (1, str.lower),
    "upper": (1, str.upper),
    "ToUpper": (1, str.upper),
    "trim": (1, str.strip),
    "TrimSpace": (1, str.strip),
}


@dataclass(frozen=True, slots=True)
class Value:
    """An argument: a label (`.name`), the line, the timestamp, or a literal string."""

    kind: str  # "label", "line", "timestamp" or "literal"
    text: str = ""


@dataclass(frozen=True, slots=True)
class Action:
    function: str  # "" for a lone value
    args: tuple[Value, ...]


@dataclass(frozen=True, slots=True)
class Template:
    """Literal text and actions, alternating (text, action, text, ..., text)."""

    parts: tuple[str | Action, ...]

    def render(self, labels: Mapping[str, str], line: str, time_ns: int) -> str:
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            values = [_value(arg, labels, line, time_ns) for arg in part.args]
            out.append(FUNCTIONS[part.function][1](*values) if part.function else values[0])
        return "".join(out)


def _value(arg: Value, labels: Mapping[str, str], line: str, time_ns: int) -> str:
    if arg.kind == "label":
        return labels.get(arg.text, "")
    if arg.kind == "line":
        return line
    if arg.kind == "timestamp":  # Go's time.Time.String() in UTC, as Loki's template prints it
        moment = datetime.fromtimestamp(time_ns // 10**9, UTC)
        fraction = f"{time_ns % 10**9:09d}".rstrip("0")
        return (
            moment.strftime("%Y-%m-%d %H:%M:%S")
            + (f".{fraction}" if fraction else "")
            + (" +0000 UTC")
        )
    return arg.text


def parse_template(text: str) -> Template:
    parts: list[str | Action] = []
    last = 0
    for match in _ACTION.finditer(text):
        literal = text[last : match.start()]
        parts += [literal.rstrip() if match.group(1) else literal, _action(match.group(2))]
        last = match.end()
        if match.group(3):
            rest = text[last:]
            last = len(text) - len(rest.lstrip())
    tail = text[last:]
    if "{{" in tail or any("{{" in p or "}}" in p for p in parts if isinstance(p, str)):
        raise LogQLError(f"invalid template {text!r}: unbalanced {{{{ }}}}")
    parts.append(tail)
    return Template(tuple(parts))


def _action(body: str) -> Action:
    words: list[str] = []
    pos = 0
    while pos < len(body.rstrip()):
        match = _WORD.match(body, pos)
        if match is None:
            raise LogQLError(f"unsupported template action {{{{{body}}}}}")
        words.append(match.group(1))
        pos = match.end()
    if not words:
        raise LogQLError("empty template action {{ }}")
    head, *rest = words
    if head in FUNCTIONS:
        arity = FUNCTIONS[head][0]
        if len(rest) != arity:
            raise LogQLError(f"template function {head} takes {arity} argument(s), got {len(rest)}")
        return Action(head, tuple(_argument(word) for word in rest))
    if rest:
        raise LogQLError(
            f"unsupported template action {{{{{body}}}}}: supported are .label, {LINE}, "
            f"{TIMESTAMP} and the functions {', '.join(FUNCTIONS)}"
        )
    return Action("", (_argument(head),))


def _argument(word: str) -> Value:
    if word[0] in '"`':
        return Value("literal", unquote(word))
    if _FIELD.fullmatch(word):
        return Value("label", word[1:])
    if word == LINE:
        return Value("line")
    if word == TIMESTAMP:
        return Value("timestamp")
    raise LogQLError(
        f"unsupported template argument {word!r}: use .label, {LINE}, {TIMESTAMP} or a "
        "quoted string (pipes, variables and control structures are not supported)"
    )
