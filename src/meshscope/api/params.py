"""Query-parameter parsing shared by the Jaeger, Zipkin and meshscope read APIs.

Every parser raises `ParamError` with a message naming the parameter; routes turn it into a
400 in their API's own error envelope.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import parse_qsl

import orjson
from starlette.datastructures import QueryParams
from starlette.requests import Request

from meshscope.go_duration import parse_go_duration
from meshscope.model.ids import TRACE_ID_HEX_LEN

NS_PER_US = 1_000
NS_PER_MS = 1_000_000
MAX_INT64 = 2**63 - 1

MAX_DURATION_CHARS = 64


# logfmt (`key=value key2="quoted value" flag`), as go-logfmt decodes it: keys and bare
# values are runs of printable characters other than `=` and `"`; quoted values take JSON's
# escapes. Control characters other than the separators are refused.
MAX_LOGFMT_CHARS = 4096
_LOGFMT_SPACE = re.compile(r"[ \t\r\n]*")
_LOGFMT_KEY = re.compile(r'[^\x00-\x20="\x7f]+')
_LOGFMT_BARE = re.compile(r'[^\x00-\x20="\x7f]*')
_LOGFMT_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)


def rfc3339(time_ns: int) -> str:
    """UTC time as Go's RFC3339Nano writes it (Prometheus, Loki, Alertmanager): fraction
    digits up to ns with trailing zeros dropped, none for whole seconds."""
    seconds, ns = divmod(time_ns, 10**9)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{ns:09d}".rstrip("0")
    return f"{stamp}.{fraction}Z" if fraction else f"{stamp}Z"


class ParamError(ValueError):
    """A bad request parameter (answered with 400)."""


def go_duration_ns(text: str, name: str) -> int:
    """A Go duration string (`100ms`, `1.5s`, `1h2m`, `250us`) in nanoseconds; >= 0."""
    body = text.strip()
    # No int64 duration needs more; longer text would only make the scan below slow.
    if len(body) > MAX_DURATION_CHARS:
        raise ParamError(f"parameter {name} is longer than {MAX_DURATION_CHARS} characters")
    body = body.removeprefix("+")
    total = parse_go_duration(body) if body[:1] not in "+-" else None  # ("": None) >= 0
    if total is None:
        raise ParamError(f'cannot parse parameter {name}="{text}": not a duration like 100ms')
    if total > MAX_INT64:
        raise ParamError(f'parameter {name}="{text}" is out of range')
    return int(total)


def logfmt_pairs(text: str, name: str) -> list[tuple[str, str]]:
    """The `key=value` pairs of a logfmt parameter, in order (a key without `=` has the value
    ""); ParamError naming the position of a syntax error, as Tempo's `invalid tags: ...`."""
    if len(text) > MAX_LOGFMT_CHARS:
        raise ParamError(f"invalid {name}: longer than {MAX_LOGFMT_CHARS} characters")
    pairs: list[tuple[str, str]] = []
    at = _LOGFMT_SPACE.match(text).end()  # type: ignore[union-attr]
    while at < len(text):
        key = _LOGFMT_KEY.match(text, at)
        if key is None:
            raise _logfmt_error(name, text, at)
        at, value = key.end(), ""
        if text.startswith("=", at):
            at += 1
            if text.startswith('"', at):
                quoted = _LOGFMT_QUOTED.match(text, at)
                if quoted is None:
                    raise ParamError(f"invalid {name}: unterminated quoted value at pos {at}")
                try:
                    value = orjson.loads(quoted.group())
                except orjson.JSONDecodeError:
                    raise ParamError(f"invalid {name}: invalid quoted value at pos {at}") from None
                at = quoted.end()
            else:
                bare = _LOGFMT_BARE.match(text, at)
                assert bare is not None  # it matches the empty string
                at, value = bare.end(), bare.group()
        space = _LOGFMT_SPACE.match(text, at)
        assert space is not None
        if space.end() == at and at < len(text):
            raise _logfmt_error(name, text, at)
        pairs.append((key.group(), value))
        at = space.end()
    return pairs


def _logfmt_error(name: str, text: str, at: int) -> ParamError:
    return ParamError(f"invalid {name}: unexpected {text[at]!r} at pos {at}")


def integer(text: str, name: str, minimum: int = 0, maximum: int = MAX_INT64) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ParamError(f'cannot parse parameter {name}="{text}": not an integer') from None
    if not minimum <= value <= maximum:
        raise ParamError(f"parameter {name}={value} must be between {minimum} and {maximum}")
    return value


def optional_int(
    params: QueryParams, name: str, default: int, minimum: int = 0, maximum: int = MAX_INT64
) -> int:
    """`name` as an integer; `default` when absent or empty (clients send `minDuration=`)."""
    text = params.get(name, "")
    return integer(text, name, minimum, maximum) if text.strip() else default


def scaled(value: int, factor: int) -> int:
    """`value * factor` clamped to the int64 range the stores use."""
    return max(-MAX_INT64, min(MAX_INT64, value * factor))


def trace_id(raw: str, name: str = "traceID") -> str:
    """Lowercase hex, left-padded to 32 (64-bit Zipkin/Jaeger ids)."""
    value = raw.strip().lower()
    if (
        not value
        or len(value) > TRACE_ID_HEX_LEN
        or any(c not in "0123456789abcdef" for c in value)
    ):
        raise ParamError(f'parameter {name}="{raw}" must be 1 to 32 hex characters')
    return value.rjust(TRACE_ID_HEX_LEN, "0")


FormParams = dict[str, list[str]]
MAX_FORM_BYTES = 10 * 2**20
"""The largest form-encoded POST body of a read, as Go's `ParseForm` (Prometheus, Loki)."""


async def read_params(request: Request) -> FormParams:
    """Query-string parameters, plus the fields of a form-urlencoded POST body (Prometheus and
    Loki clients, Grafana among them, POST their queries as forms)."""
    params: FormParams = {}
    for key, value in request.query_params.multi_items():
        params.setdefault(key, []).append(value)
    content_type = request.headers.get("content-type", "")
    if request.method == "POST" and content_type.startswith("application/x-www-form-urlencoded"):
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_FORM_BYTES:
                raise ParamError(f"http: POST too large (a form of over {MAX_FORM_BYTES} bytes)")
        body = raw.decode("utf-8", errors="replace")
        for key, value in parse_qsl(body, keep_blank_values=True):
            params.setdefault(key, []).append(value)
    return params
