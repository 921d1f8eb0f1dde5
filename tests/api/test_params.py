"""Parameter parsing shared by the read APIs."""

from __future__ import annotations

import pytest

from meshscope.api.params import ParamError, go_duration_ns, logfmt_pairs, rfc3339, trace_id


@pytest.mark.parametrize(
    ("text", "ns"),
    [("100ms", 100_000_000), ("1.5s", 1_500_000_000), ("1h2m", 3_720_000_000_000),
     ("250us", 250_000), ("250µs", 250_000), ("7ns", 7), ("0", 0), (".5s", 500_000_000)],
)  # fmt: skip
def test_go_durations(text: str, ns: int) -> None:
    assert go_duration_ns(text, "d") == ns


@pytest.mark.parametrize("text", ["", "10", "1x", "-1s", "s", "1s 2ms", "1e3s"])
def test_bad_go_durations(text: str) -> None:
    with pytest.raises(ParamError, match="d="):
        go_duration_ns(text, "d")


def test_trace_ids() -> None:
    assert trace_id("ABC") == f"{0xABC:032x}"
    for bad in ("", "g", "1" * 33):
        with pytest.raises(ParamError):
            trace_id(bad)


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (1_700_000_000 * 10**9, "2023-11-14T22:13:20Z"),
        (1_700_000_000 * 10**9 + 500_000_000, "2023-11-14T22:13:20.5Z"),
        (1_700_000_000 * 10**9 + 1, "2023-11-14T22:13:20.000000001Z"),
        (0, "1970-01-01T00:00:00Z"),
    ],
)
def test_rfc3339_as_go_writes_rfc3339nano(ns: int, text: str) -> None:
    assert rfc3339(ns) == text


@pytest.mark.parametrize(
    ("text", "pairs"),
    [
        ("service.name=cart http.status_code=500",
         [("service.name", "cart"), ("http.status_code", "500")]),
        ('name="GET /cart"  flag\tempty=\n', [("name", "GET /cart"), ("flag", ""), ("empty", "")]),
        (r'q="say \"hi\"\n" u="\u00e9"', [("q", 'say "hi"\n'), ("u", "é")]),
        ("", []),
        ("   ", []),
    ],
)  # fmt: skip
def test_logfmt_pairs(text: str, pairs: list[tuple[str, str]]) -> None:
    assert logfmt_pairs(text, "tags") == pairs


@pytest.mark.parametrize(
    ("text", "message"),
    [('a="open', "unterminated quoted value at pos 2"), ("=v", "unexpected '=' at pos 0"),
     ('a="x"y', "unexpected 'y' at pos 5"), ("a\x00=b", r"unexpected '\x00' at pos 1"),
     ('a="\x01"', "invalid quoted value"), ("a=" + "b" * 5000, "longer than")],
)  # fmt: skip
def test_bad_logfmt_says_where(text: str, message: str) -> None:
    with pytest.raises(ParamError) as error:
        logfmt_pairs(text, "tags")
    assert str(error.value).startswith("invalid tags: ") and message in str(error.value)
