"""The annotation and label templates of alerting rules: the part of Prometheus' Go
templates rule files use. `{{ $labels.service }}` (or `.Labels.service`), `{{ $value }}` (or
`.Value`), a pipe into `humanize`, `humanize1024`, `humanizePercentage`,
`humanizeDuration`, and `printf "%.2f" $value`. Anything else is refused when the rule file
is loaded, naming the action, rather than sent to Alertmanager verbatim."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

_ACTION = re.compile(r"{{(-\s)?\s*(.*?)\s*(\s-)?}}", re.DOTALL)
"""An action; `{{- ` and ` -}}` trim the whitespace before and after it, as in Go."""
_OPERAND = re.compile(r"(?:\$labels|\.Labels)\.([A-Za-z_][A-Za-z0-9_]*)|(\$value|\.Value)")
_PRINTF = re.compile(r'printf\s+"(%[-+ #0]*\d*(?:\.\d+)?[dfegsv])"\s+(.+)')


class TemplateError(ValueError):
    """A template the rule evaluator cannot render; the message names the action."""


def go_float(value: float) -> str:
    """A float as Go's `%v` prints it: the shortest digits that read back, in exponent form
    below 1e-4 or from 1e6 on (`100`, `0.05`, `1e+06`, `1.5e-05`, `NaN`, `+Inf`)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign, digit_tuple, exponent = Decimal(repr(value)).as_tuple()
    digits = "".join(map(str, digit_tuple)).rstrip("0") or "0"
    assert isinstance(exponent, int)
    point = len(digit_tuple) + exponent  # where the decimal point falls in `digits`
    x = point - 1
    text = "-" if sign else ""
    if x < -4 or x >= 6:  # strconv's %g with the shortest precision decides at 6
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{text}{mantissa}e{'-' if x < 0 else '+'}{abs(x):02d}"
    if point <= 0:
        return f"{text}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return text + digits + "0" * (point - len(digits))
    return f"{text}{digits[:point]}.{digits[point:]}"


def _humanize(value: float, base: int, prefixes: tuple[str, ...]) -> str:
    """Prometheus' humanize (base 1000, also below 1: m, u, n, ...) and humanize1024."""
    if not math.isfinite(value):
        return go_float(value)
    if value == 0:
        return "0"
    prefix = ""
    if abs(value) >= 1:
        for candidate in prefixes:
            if abs(value) < base:
                break
            value /= base
            prefix = candidate
    elif base == 1000:
        for candidate in ("m", "u", "n", "p", "f", "a", "z", "y"):
            if abs(value) >= 1:
                break
            value *= 1000
            prefix = candidate
    return f"{value:.4g}{prefix}"


def _duration(seconds: float) -> str:
    """Prometheus' humanizeDuration: `1d 2h 3m 4s`, or ms/us/ns below a second."""
    if not math.isfinite(seconds):
        return go_float(seconds)
    if seconds == 0:
        return "0s"
    if abs(seconds) < 1:
        for unit, scale in (("ms", 1e3), ("us", 1e6), ("ns", 1e9)):
            if abs(seconds) * scale >= 1 or unit == "ns":
                return f"{seconds * scale:.4g}{unit}"
    sign = "-" if seconds < 0 else ""
    whole = int(abs(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{u}" for n, u in ((days, "d"), (hours, "h"), (minutes, "m")) if n]
    return sign + " ".join([*parts, f"{secs}s"])


_FUNCTIONS: dict[str, Callable[[float], str]] = {
    "humanize": lambda v: _humanize(v, 1000, ("k", "M", "G", "T", "P", "E", "Z", "Y")),
    "humanize1024": lambda v: _humanize(v, 1024, ("ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi")),
    "humanizePercentage": lambda v: f"{v * 100:.4g}%" if math.isfinite(v) else go_float(v),
    "humanizeDuration": _duration,
}


@dataclass(frozen=True, slots=True)
class Template:
    text: str

    def render(self, labels: dict[str, str], value: float) -> str:
        parts: list[str] = []
        at, trim_next = 0, False
        for match in _ACTION.finditer(self.text):
            trim_before, action, trim_after = match.groups()
            literal = self.text[at : match.start()]
            literal = literal.lstrip() if trim_next else literal
            parts.append(literal.rstrip() if trim_before else literal)
            parts.append(_action(action, labels, value))
            at, trim_next = match.end(), trim_after is not None
        tail = self.text[at:]
        parts.append(tail.lstrip() if trim_next else tail)
        return "".join(parts)


def parse_template(text: str) -> Template:
    """Raises TemplateError for an action outside the supported part."""
    template = Template(text)
    template.render({}, 0.0)
    return template


def _action(action: str, labels: dict[str, str], value: float) -> str:
    printf = _PRINTF.fullmatch(action)
    if printf is not None:
        form, operand = printf.groups()
        got = _operand(operand.strip(), labels, value, action)
        if form[-1] in "sv":
            return (form[:-1] + "s") % (got if isinstance(got, str) else go_float(got))
        if isinstance(got, str):
            raise TemplateError(f"unsupported template action {{{{ {action} }}}}: a number format")
        if not math.isfinite(got):  # Go prints NaN and +-Inf whatever the verb
            return go_float(got)
        return form % (int(got) if form[-1] == "d" else got)
    head, *pipes = [part.strip() for part in action.split("|")]
    got = _operand(head, labels, value, action)
    for pipe in pipes:
        function = _FUNCTIONS.get(pipe)
        if function is None or isinstance(got, str):
            raise TemplateError(f"unsupported template action {{{{ {action} }}}}")
        got = function(got)
    return got if isinstance(got, str) else go_float(got)


def _operand(text: str, labels: dict[str, str], value: float, action: str) -> str | float:
    match = _OPERAND.fullmatch(text)
    if match is None:
        raise TemplateError(
            f"unsupported template action {{{{ {action} }}}}: rules may use $labels.<name>, "
            "$value, | humanize, | humanize1024, | humanizePercentage, | humanizeDuration "
            'and printf "%.2f" $value'
        )
    if match.group(1) is not None:
        return labels.get(match.group(1), "")
    return value
