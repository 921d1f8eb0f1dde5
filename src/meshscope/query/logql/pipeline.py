"""Running a LogQL pipeline over one entry: line filters, parsers, label filters, formatting.

`run(stages, labels, line, time_ns)` returns the entry's final labels and line, or None when a
stage drops it. Parser failures do not drop an entry: `| json` sets `__error__`
(`JSONParserErr`) as Loki does (`| logfmt` without `--strict` skips what it cannot read, as
Loki's), and so do failed numeric/duration conversions in label filters (`LabelFilterErr`),
which then keep the entry; as Loki 3, a numeric or duration filter still compares on an
entry that has an error (Loki 2 let it pass), and one without the label passes none.
"""

from __future__ import annotations

from collections.abc import Sequence

from meshscope.go_duration import parse_go_duration
from meshscope.go_parsers import parse_float
from meshscope.model.regex import compile_pattern
from meshscope.query.logql.ast import (
    BoolFilter,
    Comparison,
    Decolorize,
    Extraction,
    LabelFilter,
    LabelFilterStage,
    LabelFormat,
    LabelsStage,
    LineFilter,
    LineFormat,
    Parser,
    PatternParser,
    RegexpParser,
    Stage,
    Unpack,
)
from meshscope.query.logql.json_fields import decode_object, leaves, value_at
from meshscope.query.logql.labels import label_name
from meshscope.query.logql.logfmt import logfmt_pairs

_ANSI_COLOUR = compile_pattern(
    "[\x1b\x9b][[\\]()#;?]*(?:(?:(?:[a-zA-Z\\d]*(?:;[a-zA-Z\\d]*)*)?\x07)"
    "|(?:(?:\\d{1,4}(?:;\\d{0,4})*)?[\\dA-PRZcf-ntqry=><~]))",
    anchored=False,
)
"""The ANSI escape sequences `| decolorize` removes (Loki's `ansiPattern`, from stripansi)."""
_PACKED_ENTRY = "_entry"
ERROR_LABEL = "__error__"
ERROR_DETAILS_LABEL = "__error_details__"
ERROR_LABELS = frozenset({ERROR_LABEL, ERROR_DETAILS_LABEL})
"""What `| keep` keeps whatever it names, as Loki's (`isSpecialLabel`)."""


def run(
    stages: Sequence[Stage], labels: dict[str, str], line: str, time_ns: int = 0
) -> tuple[dict[str, str], str] | None:
    parsed: _Parsed | None = None  # made at the first parser: most queries have none
    for stage in stages:
        if isinstance(stage, LineFilter):
            if not stage.keeps(line):
                return None
        elif isinstance(stage, Parser):
            parsed = parsed or _Parsed(frozenset(labels))
            labels = dict(labels)
            if stage.extractions:
                extract = _extract_json if stage.kind == "json" else _extract_logfmt
                extract(stage.extractions, line, labels, parsed)
            elif stage.kind == "json":
                _parse_json(line, labels, parsed)
            else:
                _parse_logfmt(line, labels, parsed)
        elif isinstance(stage, RegexpParser | PatternParser | Unpack):
            parsed = parsed or _Parsed(frozenset(labels))
            labels = dict(labels)
            if isinstance(stage, Unpack):
                line = _unpack(line, labels, parsed)
            else:
                pairs = (
                    _regexp_pairs(stage, line)
                    if isinstance(stage, RegexpParser)
                    else stage.pattern.matches(line)
                )
                for name, value in pairs:
                    _set(labels, name, value, parsed)
        elif isinstance(stage, Decolorize):
            line = _ANSI_COLOUR.sub("", line)
        elif isinstance(stage, LabelFilterStage):
            errors: dict[str, str] = {}  # what the stage sets (LabelFilterErr): copied in then
            if not _keeps(stage.expr, labels, errors):
                return None
            if errors:
                labels = {**labels, **errors}
        elif isinstance(stage, LineFormat):
            line = stage.template.render(labels, line, time_ns)
        elif isinstance(stage, LabelFormat):
            labels = _label_format(stage, labels, line, time_ns)
        elif isinstance(stage, LabelsStage):
            names = set(stage.names)
            labels = {
                k: v
                for k, v in labels.items()
                if (k in names) == stage.keep or (stage.keep and k in ERROR_LABELS)
            }
    return labels, line


def parse_number(text: str) -> float | None:
    """A label value as Go's `strconv.ParseFloat` reads it (Loki's numeric filters and
    unwraps); None if it is not one."""
    return parse_float(text)


def float_error(text: str) -> str:
    """Go's error for a value `strconv.ParseFloat` refuses (Loki's `__error_details__`)."""
    return f'strconv.ParseFloat: parsing "{text}": invalid syntax'


def duration_error(text: str) -> str:
    """Go's error for a value `time.ParseDuration` refuses."""
    return f'time: invalid duration "{text}"'


def parse_duration(text: str) -> float | None:
    """A label value as Go's `time.ParseDuration` reads it (Loki's duration filters), in ns:
    `0`, signs, fractions and `1h2m`, no `d`; None if it is not one."""
    return parse_go_duration(text) if len(text) <= 100 else None


def _filter_error(errors: dict[str, str], details: str) -> bool:
    """Loki's LabelFilterErr: the entry is kept, with the error and why."""
    errors[ERROR_LABEL] = "LabelFilterErr"
    errors[ERROR_DETAILS_LABEL] = details
    return True


def _label_format(
    stage: LabelFormat, labels: dict[str, str], line: str, time_ns: int
) -> dict[str, str]:
    """As Loki's LabelsFormatter: a rename whose source is missing does nothing, and the
    templates see the renames listed before them (its data are taken at the first)."""
    out = dict(labels)
    seen: dict[str, str] | None = None
    for item in stage.assignments:
        if item.template is not None:
            if seen is None:
                seen = dict(out)
            value = item.template.render(seen, line, time_ns)
        else:
            if item.source not in out:
                continue
            value = out.pop(item.source)
        if value:
            out[item.name] = value
        else:
            out.pop(item.name, None)
    return out


class _Parsed:
    """What the parsers of one entry have extracted, beside the labels it came with."""

    __slots__ = ("base", "names")

    def __init__(self, base: frozenset[str]) -> None:
        self.base = base
        self.names: set[str] = set()


def _add(labels: dict[str, str], key: str, value: str, parsed: _Parsed) -> None:
    """An extracted label, as Loki 3.6's parsers add one: a key extracted before (by this
    parser or an earlier one) keeps its first value; one clashing with a label the entry
    came with (stream label, structured metadata) gets `_extracted` appended."""
    name = label_name(key)
    if name in parsed.names:
        return
    parsed.names.add(name)
    if name in parsed.base:
        name += "_extracted"
    if value != "":
        labels[name] = value


def _parse_json(line: str, labels: dict[str, str], parsed: _Parsed) -> None:
    """Every field, nested keys joined by `_` (numbers as their JSON text)."""
    document, problem = decode_object(line)
    if document is None:
        labels[ERROR_LABEL] = "JSONParserErr"
        labels[ERROR_DETAILS_LABEL] = problem
        return
    for name, _, value in leaves(document):
        _add(labels, name, value, parsed)


def _extract_json(
    extractions: tuple[Extraction, ...], line: str, labels: dict[str, str], parsed: _Parsed
) -> None:
    """`| json a="b.c"`: each label takes its path's value, as Loki's JSONExpressionParser."""
    document, problem = decode_object(line)
    if document is None:
        labels[ERROR_LABEL] = "JSONParserErr"
        labels[ERROR_DETAILS_LABEL] = problem
        return
    for extraction in extractions:
        _set(labels, extraction.label, value_at(document, extraction.path), parsed)


def _extract_logfmt(
    extractions: tuple[Extraction, ...], line: str, labels: dict[str, str], parsed: _Parsed
) -> None:
    """`| logfmt a="key"`: each label takes its key's (last) value, as Loki's
    LogfmtExpressionParser."""
    wanted = {str(extraction.path[0]): extraction.label for extraction in extractions}
    found: dict[str, str] = {}
    for key, value in logfmt_pairs(line):
        name = label_name(key)
        if name in wanted:
            found[wanted[name]] = value
    for extraction in extractions:
        _set(labels, extraction.label, found.get(extraction.label), parsed)


def _regexp_pairs(stage: RegexpParser, line: str) -> list[tuple[str, str]]:
    """The named groups of the first match (none without a match), as Loki's RegexpParser."""
    match = stage.regex.search(line)
    if match is None:
        return []
    return [(name, match.group(name) or "") for name in stage.names]


def _unpack(line: str, labels: dict[str, str], parsed: _Parsed) -> str:
    """Loki's UnpackParser: a JSON object's string fields become labels, and `_entry`, if
    there, the line; anything else is JSONParserErr."""
    document, problem = decode_object(line)
    if document is None:
        labels[ERROR_LABEL] = "JSONParserErr"
        labels[ERROR_DETAILS_LABEL] = problem
        return line
    entry = document.pop(_PACKED_ENTRY, None)
    for key, value in document.items():
        if isinstance(value, str):
            _add(labels, key, value, parsed)
    return entry if isinstance(entry, str) else line


def _set(labels: dict[str, str], name: str, value: str | None, parsed: _Parsed) -> None:
    """An extraction's label: set (a later extraction of it wins, unlike a plain parser's);
    `_extracted` appended when the entry came with that label; empty or absent adds none."""
    if name in parsed.base:
        name += "_extracted"
    parsed.names.add(name)
    if value:
        labels[name] = value
    else:
        labels.pop(name, None)


def _parse_logfmt(line: str, labels: dict[str, str], parsed: _Parsed) -> None:
    """As Loki's logfmt parser (without --strict): pairs the scanner cannot read are skipped,
    never an error; a key alone or with an empty value adds nothing."""
    for key, value in logfmt_pairs(line):
        _add(labels, key, value, parsed)


def _keeps(expr: LabelFilter, labels: dict[str, str], errors: dict[str, str]) -> bool:
    """Whether the entry passes, as Loki's label filters decide (`pkg/logql/log/
    label_filter.go`); a value a numeric or duration filter cannot convert keeps the entry
    and sets `__error__` (`LabelFilterErr`) in `errors`, which later filters of the stage
    see as labels. Both sides of `and` run; `or` stops at a left side that keeps."""
    if isinstance(expr, BoolFilter):
        left = _keeps(expr.left, labels, errors)
        if expr.op == "or" and left:
            return True
        right = _keeps(expr.right, labels, errors)
        return left or right if expr.op == "or" else left and right
    return _compare(expr, labels, errors)


def _compare(expr: Comparison, labels: dict[str, str], errors: dict[str, str]) -> bool:
    op = expr.op
    if expr.kind == "string":
        value = errors.get(expr.name, labels.get(expr.name, ""))
        if expr.regex is not None:
            hit = expr.regex.match(value) is not None
            return hit if op == "=~" else not hit
        return (value == expr.value) == (op in ("=", "=="))
    text = labels.get(expr.name)
    if text is None:  # no such label: the entry does not pass
        return False
    actual = parse_number(text) if expr.kind != "duration" else parse_duration(text)
    if actual is None:  # kept; the first error of the entry is the one it shows
        if ERROR_LABEL in labels or errors:
            return True
        if expr.kind == "duration":  # Go's error texts, as Loki's __error_details__
            return _filter_error(errors, duration_error(text))
        return _filter_error(errors, float_error(text))
    wanted = float(expr.value)
    if op in ("=", "=="):
        return actual == wanted
    if op == "!=":
        return actual != wanted
    if op == ">":
        return actual > wanted
    if op == ">=":
        return actual >= wanted
    if op == "<":
        return actual < wanted
    return actual <= wanted
