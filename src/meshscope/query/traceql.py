"""A TraceQL subset: span-set filters, as Grafana's Tempo data source sends them.

    { resource.service.name = "cart" && span.http.status_code >= 500 }
    { .customer.tier =~ "gold|platinum" && duration > 250ms } || { status = error }
    { name = "GET /cart" && kind = server && status != ok }

    { resource.service.name = "frontend" } >> { status = error }

A query is one or more span sets `{ ... }` joined by `&&` (the trace has spans matching
each) or `||` (any), and by the structural operators `>`, `<`, `>>`, `<<`, `~` with their
negations (`!>` ...) and unions (`&>` ...), which bind tighter (query/spansets.py), with
parentheses; `{}` matches every span. The spans a trace matches with are the query's span
set: both sides' for `&&`, `||` and the unions, the right side's that are in the relation
(or, negated, not) for a structural operator. Pipeline stages may follow after `|`
(query/traceql_stages.py: `count()`, `avg`/`min`/`max`/`sum(field)` compared to a number or
duration, `by(field)`, `coalesce()`, `select(fields)`, further span-set expressions). Inside
a span set, conditions `field op value` joined by
`&&`, `||` and parentheses. Fields: the intrinsics `name`, `status`, `kind`, `duration`,
`statusMessage`; `span.<attr>` (the span's attribute), `resource.<attr>` (its resource's;
`resource.service.name` is the span's service), `.<attr>` (span, else resource). Operators
`=`, `!=`, `>`, `>=`, `<`, `<=`, `=~`, `!~` (regexes match the whole value, as in Tempo).
Values: strings, numbers, durations (`250ms`, `1.5s`), `true`/`false`, `nil` (`!= nil`: the
field exists, `= nil`: it does not), statuses
(`error`, `ok`, `unset`), kinds (`server`, `client`, `producer`, `consumer`, `internal`,
`unspecified`). Arithmetic, pipelines inside operators and TraceQL metrics are refused with
a message naming them. No maintained Python TraceQL parser exists; see
docs/adr/0008-tempo-api-traceql-subset.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, TypeVar

from meshscope.model.regex import Pattern, RegexError, compile_pattern
from meshscope.model.spans import Span, SpanKind, StatusCode
from meshscope.query import budget
from meshscope.query.spansets import OPERATORS, SpanIds, SpanTree, relate
from meshscope.query.traceql_stages import (
    AGGREGATES,
    Coalesce,
    GroupBy,
    ScalarFilter,
    Select,
    Spanset,
    coalesced,
    compare,
    filtered,
    grouped,
)
from meshscope.query.traceql_stages import COMPARISONS as STAGE_COMPARISONS
from meshscope.store.base import attr_text

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>"(?:[^"\\]|\\.)*"|`[^`]*`)
    | (?P<duration>\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h)(?![\w.]))
    | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?![\w.]))
    | (?P<op>&&|\|\||&>>|&<<|&>|&<|&~|!>>|!<<|!>|!<|!=|!~|>=|<=|=~|>>|<<|[{}()=<>|~!+*/%^,-])
    | (?P<name>[A-Za-z_.][\w.:/-]*)
    )""",
    re.VERBOSE,
)
_UNITS_NS = {"ns": 1, "us": 10**3, "µs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9,
             "h": 3600 * 10**9}  # fmt: skip
_STATUS = {"error": StatusCode.ERROR, "ok": StatusCode.OK, "unset": StatusCode.UNSET}
_KINDS = {kind.name.lower(): kind for kind in SpanKind}
_COMPARISONS = ("=", "!=", ">", ">=", "<", "<=", "=~", "!~")
INTRINSICS = ("name", "status", "kind", "duration", "statusMessage")
_UNSUPPORTED = {"|": "a pipeline inside an operator (put it last)"}

SpanTest = Callable[[Span], bool]
T = TypeVar("T")


class TraceQLError(ValueError):
    """The query is not valid TraceQL, or uses a part this subset does not support."""


@dataclass(frozen=True, slots=True)
class Regex:
    """The value of `=~` / `!~`: an RE2 pattern matching the whole value, as in Tempo."""

    pattern: Pattern


@dataclass(frozen=True, slots=True)
class Text:
    """Not TraceQL syntax (Tempo's tag search, `tags=`, builds it): the value's text form
    (`attr_text`: `true`, `500`) equals `text`, as the stores match attributes."""

    text: str


@dataclass(frozen=True, slots=True)
class Contains:
    """Not TraceQL syntax (Tempo's tag search builds it): the value's text form contains
    `text`, case-sensitively, as Tempo matches its well-known columns (`service.name`, `name`,
    `http.url`, ...)."""

    text: str


class _Nil:
    """The value of `= nil` / `!= nil`: whether the field exists (Tempo's `exists`)."""

    def __repr__(self) -> str:
        return "nil"


NIL = _Nil()


@dataclass(frozen=True, slots=True)
class Condition:
    """`field op value`: field is an intrinsic name, `span.x`, `resource.x` or `.x`."""

    field: str
    op: str
    value: Any


@dataclass(frozen=True, slots=True)
class BoolOp:
    op: str  # "&&" or "||"
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class MatchAll:
    """`{}`."""


Node = Condition | BoolOp | MatchAll
"""What one span set `{ ... }` asks of a span."""


@dataclass(frozen=True, slots=True)
class SpansetOp:
    """`left op right` between span sets: `&&`, `||` or a structural operator
    (`spansets.OPERATORS`)."""

    op: str
    left: Expr
    right: Expr


Expr = Node | SpansetOp
"""A span set: a filter `{ ... }` (a Node) or span sets combined."""


Stage = Expr | ScalarFilter | GroupBy | Coalesce | Select
"""A pipeline stage after `|` (query/traceql_stages.py)."""


@dataclass(frozen=True, slots=True)
class Query:
    expr: Expr
    stages: tuple[Stage, ...] = ()

    def filters(self) -> list[Node]:
        """Every span set's filter, left to right (pipeline stages' too)."""
        out: list[Node] = []
        _leaves(self.expr, out, required=False)
        for stage in self.stages:
            if isinstance(stage, SpansetOp | Condition | BoolOp | MatchAll):
                _leaves(stage, out, required=False)
        return out

    def selected(self) -> list[str]:
        """The fields `select(...)` stages name."""
        return [field for stage in self.stages if isinstance(stage, Select)
                for field in stage.fields]  # fmt: skip

    def required(self) -> list[Node]:
        """The filters some span of every matching trace satisfies (left to right): not
        those under `||`, nor the left side of a negated structural operator."""
        out: list[Node] = []
        _leaves(self.expr, out, required=True)
        return out

    def conditions(self) -> list[Condition]:
        out: list[Condition] = []
        for node in self.filters():
            _collect(node, out)
        return out


def _leaves(expr: Expr, out: list[Node], required: bool) -> None:
    if not isinstance(expr, SpansetOp):
        out.append(expr)
    elif not (required and expr.op == "||"):
        if not (required and expr.op.startswith("!")):
            _leaves(expr.left, out, required)
        _leaves(expr.right, out, required)


def _collect(node: Node, out: list[Condition]) -> None:
    if isinstance(node, Condition):
        out.append(node)
    elif isinstance(node, BoolOp):
        _collect(node.left, out)
        _collect(node.right, out)


def tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise TraceQLError(f"parse error at {position}: unexpected {text[position:][:10]!r}")
        kind = match.lastgroup
        assert kind is not None
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.at = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self, expected: str | None = None, what: str = "more") -> tuple[str, str]:
        """The next token; it must be `expected` when given (`what` names it otherwise)."""
        token = self.peek()
        if token is None:
            raise TraceQLError(f"parse error: unexpected end of query, expected {expected or what}")
        if expected is not None and token[1] != expected:
            raise TraceQLError(f"parse error: expected {expected!r}, got {token[1]!r}")
        self.at += 1
        return token

    def query(self) -> Query:
        expr = self.spanset_expression()
        stages: list[Stage] = []
        while (token := self.peek()) is not None and token[1] == "|":
            self.take()
            stages.append(self.stage())
        if (token := self.peek()) is not None:
            raise _unsupported(token[1])
        return Query(expr, tuple(stages))

    def stage(self) -> Stage:
        token = self.peek()
        if token is None:
            raise TraceQLError("parse error: unexpected end of query, expected a pipeline stage")
        name = token[1]
        if name in ("{", "("):
            return self.spanset_expression()
        self.take()
        if name == "coalesce":
            self.take("(")
            self.take(")")
            return Coalesce()
        if name == "by":
            self.take("(")
            field = self.field_name()
            self.take(")")
            return GroupBy(field)
        if name == "select":
            self.take("(")
            fields = [self.field_name()]
            while (after := self.take(what="',' or ')'")[1]) == ",":
                fields.append(self.field_name())
            if after != ")":
                raise TraceQLError(f"parse error: expected ')', got {after!r}")
            return Select(tuple(fields))
        if name in AGGREGATES:
            self.take("(")
            field = "" if name == "count" else self.field_name()
            self.take(")")
            op = self.take(what="a comparison")[1]
            if op not in STAGE_COMPARISONS:
                raise TraceQLError(f"parse error: {name}() is compared with one of "
                                   f"{', '.join(STAGE_COMPARISONS)}, got {op!r}")  # fmt: skip
            kind, text = self.take(what="a number or duration")
            if kind == "duration":
                value: float = _value("duration", ">", (kind, text))
            elif kind == "number":
                value = float(text)
            else:
                raise TraceQLError(f"parse error: {name}() is compared with a number or duration, "
                                   f"got {text!r}")  # fmt: skip
            return ScalarFilter(name, field, op, value)
        raise TraceQLError(
            f"unsupported TraceQL pipeline stage {name!r}: use count(), avg(), min(), max(),"
            " sum(), by(), coalesce(), select() or a span set"
        )

    def field_name(self) -> str:
        kind, text = self.take(what="a field")
        if kind != "name":
            raise TraceQLError(f"parse error: expected a field, got {text!r}")
        return _field(text)

    def spanset_expression(self) -> Expr:
        """`&&` and `||` between span sets bind alike, left to right, and looser than the
        structural operators, as in Tempo's grammar."""
        return self.chain(("&&", "||"), self.structural, SpansetOp)

    def structural(self) -> Expr:
        return self.chain(OPERATORS, self.spanset_primary, SpansetOp)

    def chain(
        self, ops: Collection[str], operand: Callable[[], T], join: Callable[[str, T, T], T]
    ) -> T:
        """Operands joined by any of `ops`, which bind alike, left to right."""
        expr = operand()
        while (token := self.peek()) is not None and token[1] in ops:
            self.take()
            expr = join(token[1], expr, operand())
        return expr

    def spanset_primary(self) -> Expr:
        token = self.peek()
        if token is not None and token[1] == "(":
            self.take()
            expr = self.spanset_expression()
            if (inside := self.peek()) is not None and inside[1] == "|":
                raise _unsupported("|")
            self.take(")")
            return expr
        return self.spanset()

    def spanset(self) -> Node:
        self.take("{")
        if (token := self.peek()) is not None and token[1] == "}":
            self.take("}")
            return MatchAll()
        node = self.expression()
        token = self.peek()
        if token is None or token[1] != "}":
            raise _unsupported(token[1]) if token else TraceQLError("parse error: missing '}'")
        self.take("}")
        return node

    def expression(self) -> Node:
        """`&&` and `||` inside a span set bind alike, left to right, as in Tempo's grammar
        (`%left AND OR`): `{ a || b && c }` is `{ (a || b) && c }`."""
        return self.chain(("&&", "||"), self.primary, BoolOp)

    def primary(self) -> Node:
        token = self.peek()
        if token is not None and token[1] == "(":
            self.take()
            node = self.expression()
            self.take(")")
            return node
        field = self.field_name()
        op_token = self.take(what="an operator")
        if op_token[1] not in _COMPARISONS:
            raise _unsupported(op_token[1])
        return Condition(field, op_token[1], _value(field, op_token[1], self.take(what="a value")))


def _unsupported(token: str) -> TraceQLError:
    what = _UNSUPPORTED.get(token)
    if what is not None:
        return TraceQLError(
            f"unsupported TraceQL: {what} (meshscope supports span-set filters and operators)"
        )
    return TraceQLError(f"parse error: unexpected {token!r}")


def _field(text: str) -> str:
    if text in INTRINSICS or text.startswith((".", "span.", "resource.")):
        if text in (".", "span.", "resource."):
            raise TraceQLError(f"parse error: attribute name missing after {text!r}")
        return text
    raise TraceQLError(
        f"unknown field {text!r}: use name, status, kind, duration, statusMessage, "
        "span.<attribute>, resource.<attribute> or .<attribute>"
    )


def _value(field: str, op: str, token: tuple[str, str]) -> Any:
    kind, text = token
    if field in ("status", "kind"):  # enums: only their own keywords, unquoted (as Tempo)
        table: dict[str, Any] = _STATUS if field == "status" else _KINDS
        if kind == "name" and text in table and op in ("=", "!="):
            return table[text]
        raise TraceQLError(
            f"binary operations must operate on the same type: {field} {op} {text} "
            f"({field} is compared with = or != to one of {', '.join(table)}, unquoted)"
        )
    if op in ("=~", "!~"):
        if kind != "string":
            raise TraceQLError(f"{op} needs a string regex, got {text!r}")
        try:
            return Regex(compile_pattern(_unquote(text), anchored=True))
        except RegexError as error:
            raise TraceQLError(f"bad regex {text}: {error}") from None
    if kind == "string":
        return _unquote(text)
    if kind == "duration":
        amount, unit = re.fullmatch(r"([\d.]+)(\D+)", text).groups()  # type: ignore[union-attr]
        return round(float(amount) * _UNITS_NS[unit])
    if kind == "number":
        return float(text)
    if text in ("true", "false"):
        return text == "true"
    if text == "nil" and kind == "name":
        if op not in ("=", "!="):
            raise TraceQLError(f"nil is compared with = or != (not {op})")
        return NIL
    raise TraceQLError(f"parse error: bad value {text!r} for {field}")


def _unquote(text: str) -> str:
    if text.startswith("`"):
        return text[1:-1]
    return re.sub(
        r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), text[1:-1]
    )


def parse(text: str) -> Query:
    if not text.strip():
        raise TraceQLError("empty query: write a span set like { status = error }")
    budget.check_depth(text)  # the parser and `matches` recurse once per level
    return _Parser(text).query()


def field_value(span: Span, field: str) -> Any:
    """The span's value for a field, None when it has none."""
    if field == "name":
        return span.name
    if field == "status":
        return span.status_code
    if field == "kind":
        return span.kind
    if field == "duration":
        return span.duration_ns
    if field == "statusMessage":
        return span.status_message
    if field.startswith("resource."):
        key = field[len("resource.") :]
        return span.service if key == "service.name" else span.resource.get(key)
    if field.startswith("span."):
        return span.attributes.get(field[len("span.") :])
    key = field[1:]
    if key in span.attributes:
        return span.attributes[key]
    return span.service if key == "service.name" else span.resource.get(key)


def matches(node: Node, span: Span) -> bool:
    if isinstance(node, MatchAll):
        return True
    if isinstance(node, BoolOp):
        if node.op == "&&":
            return matches(node.left, span) and matches(node.right, span)
        return matches(node.left, span) or matches(node.right, span)
    return _compare(field_value(span, node.field), node.op, node.value)


def _compare(actual: Any, op: str, wanted: Any) -> bool:
    """As Tempo: a value of another type than the literal's satisfies no comparison, `!=`
    neither (`.code = 500` is not true of the string "500"; ints and floats compare as
    numbers), and a regex applies to strings only."""
    if wanted is NIL:  # `!= nil`: the field exists; `= nil`: it does not
        return (actual is None) is (op == "=")
    if actual is None:  # a missing attribute satisfies no other condition, as SQL's NULL
        return False
    if isinstance(wanted, Regex):
        if not isinstance(actual, str):
            return False
        found = wanted.pattern.fullmatch(actual) is not None
        return found if op == "=~" else not found
    if isinstance(wanted, Text | Contains):
        text = actual if isinstance(actual, str) else attr_text(actual)
        found = text == wanted.text if isinstance(wanted, Text) else wanted.text in text
        return found if op == "=" else not found if op == "!=" else False
    if isinstance(wanted, (StatusCode, SpanKind)):
        same = actual is wanted
        return same if op == "=" else not same if op == "!=" else False
    if isinstance(wanted, bool) or isinstance(actual, bool):
        if not (isinstance(wanted, bool) and isinstance(actual, bool)):
            return False
        return actual == wanted if op == "=" else actual != wanted if op == "!=" else False
    if isinstance(wanted, (int, float)) != isinstance(actual, (int, float)):
        return False
    if isinstance(wanted, str) != isinstance(actual, str):
        return False
    return compare(actual, op, wanted)


def spansets(query: Query, spans: list[Span]) -> list[Spanset]:
    """The query's span sets in a trace (its spans in the trace's order): [] when the trace
    does not match. One, unless a `by()` stage split it."""
    found = select_spans(query.expr, spans)
    sets = [Spanset(found)] if found else []
    for stage in query.stages:
        if not sets:
            break
        if isinstance(stage, ScalarFilter):
            sets = filtered(stage, sets, field_value)
        elif isinstance(stage, GroupBy):
            sets = grouped(stage, sets, field_value)
        elif isinstance(stage, Coalesce):
            sets = coalesced(sets)
        elif not isinstance(stage, Select):  # a span-set expression over each set's spans
            sets = [
                Spanset(kept, spanset.attributes)
                for spanset in sets
                if (kept := select_spans(stage, spanset.spans))
            ]
    return sets


def trace_matches(query: Query, spans: list[Span]) -> list[Span]:
    """The spans of the query's span sets in a trace, each once, in the trace's order: []
    when the trace does not match."""
    ids = {id(span) for spanset in spansets(query, spans) for span in spanset.spans}
    return _of(spans, ids)


def select_spans(expr: Expr, spans: list[Span]) -> list[Span]:
    """The span set `expr` gives among `spans` (a trace, or a span set of one)."""
    trees: list[SpanTree] = []  # made once, when a structural operator needs it

    def tree() -> SpanTree:
        if not trees:
            trees.append(SpanTree(spans))
        return trees[0]

    def evaluate(expr: Expr) -> SpanIds:
        if not isinstance(expr, SpansetOp):
            return {id(span) for span in spans if matches(expr, span)}
        left, right = evaluate(expr.left), evaluate(expr.right)
        budget.check()  # each operator walks the trace: a deadline stops a long chain
        if expr.op == "&&":
            return left | right if left and right else set()
        if expr.op == "||":
            return left | right
        if not right:
            return set()
        return relate(expr.op, _of(spans, left), _of(spans, right), tree())

    return _of(spans, evaluate(expr))


def _of(spans: list[Span], ids: SpanIds) -> list[Span]:
    return [span for span in spans if id(span) in ids]
