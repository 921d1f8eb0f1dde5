"""LogQL pipeline stages over one entry, and the labels a stored record shows."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshscope.model.logs import LogRecord, Severity
from meshscope.query.logql import LogExpr, LogQLError, parse
from meshscope.query.logql.labels import record_labels, stream_labels, structured_metadata
from meshscope.query.logql.pipeline import run


def _run(query: str, line: str, **labels: str) -> tuple[dict[str, str], str] | None:
    expr = parse('{a="b"} ' + query)
    assert isinstance(expr, LogExpr)
    return run(expr.stages, dict(labels), line)


def test_line_filters_chain() -> None:
    assert _run('|= "err" != "debug"', "an error here") is not None
    assert _run('|= "err" != "here"', "an error here") is None
    assert _run('|~ "e(rr|xx)or"', "an error") is not None
    assert _run('!~ "^an"', "an error") is None
    assert _run('|= "Error"', "an error") is None  # case-sensitive, like Loki


def test_json_flattens_nested_objects_and_keeps_existing_labels() -> None:
    out = _run(
        "| json",
        '{"a": {"b": 1, "c": [1]}, "s": "x", "t": true, "n": null, "f": 2.5, "app": "y"}',
        app="web",
    )
    assert out is not None
    assert out[0] == {
        "app": "web",
        "a_b": "1",
        "s": "x",
        "t": "true",
        "f": "2.5",
        "app_extracted": "y",
    }
    failed = _run("| json", "not json")
    assert failed is not None and failed[0]["__error__"] == "JSONParserErr"
    assert _run('| json | __error__=""', "not json") is None


def test_logfmt_and_numeric_duration_filters() -> None:
    line = 'msg="a b \\"c\\"" status=503 took=1.5s flag'
    out = _run("| logfmt", line)
    assert out is not None
    assert out[0] == {"msg": 'a b "c"', "status": "503", "took": "1.5s"}
    assert _run("| logfmt | status >= 500", line) is not None
    assert _run("| logfmt | status < 500", line) is None
    assert _run("| logfmt | status == 503", line) is not None
    assert _run("| logfmt | status != 503", line) is None
    assert _run("| logfmt | took > 1s", line) is not None
    assert _run("| logfmt | took > 2s", line) is None
    assert _run('| logfmt | msg =~ "a b.*"', line) is not None
    assert _run('| logfmt | msg =~ "b.*"', line) is None  # label regexes are anchored
    kept = _run("| logfmt | msg > 5", line)  # not a number: kept, marked as Loki does
    assert kept is not None and kept[0]["__error__"] == "LabelFilterErr"


def test_line_format_and_drop_keep() -> None:
    out = _run('| logfmt | line_format "{{.status}} {{ .missing }}!" | drop msg', "status=5 msg=x")
    assert out == ({"status": "5"}, "5 !")
    assert _run("| logfmt | keep msg", "status=5 msg=x") == ({"msg": "x"}, "status=5 msg=x")
    # line filters after line_format see the new line
    assert _run('| logfmt | line_format "{{.msg}}" |= "status"', "status=5 msg=x") is None


def test_record_labels() -> None:
    record = LogRecord(
        time_ns=1,
        body="b",
        service="cart",
        severity=Severity.WARN,
        attributes={"http.status_code": 500, "zone": "b", "gone": None, "1x": "y"},
        resource={"k8s.pod.name": "p1", "zone": "a", "service.name": "cart"},
    )
    assert record_labels(record) == {
        "service_name": "cart",
        "k8s_pod_name": "p1",
        "zone": "b",
        "http_status_code": "500",
        "_1x": "y",
        "detected_level": "warn",
        "level": "warn",
    }


def test_label_format_templates_and_renames() -> None:
    # every assignment sees the labels before the stage; a rename removes the source
    out = _run(
        '| label_format hit=`{{ contains "abc" __line__ }}`, who="{{.user}}@{{ .host }}", '
        "node=host, miss=`{{ hasPrefix \"x\" .user }}`",
        "see abc here", user="ann", host="h1",
    )  # fmt: skip
    assert out == (
        {"user": "ann", "hit": "true", "who": "ann@h1", "node": "h1", "miss": "false"},
        "see abc here",
    )
    # `{{-` and `-}}` trim the whitespace next to them; empty results remove the label
    out = _run(
        '| line_format "a  {{- .x -}}  b {{ upper .x }}" | label_format x=`{{.none}}`', "", x="q"
    )
    assert out == ({}, "aqb Q")
    # Go's time.Time.String(), as Loki's templates print a time: trailing zeros trimmed.
    stamp = _run("| line_format `{{ __timestamp__ }}`", "")
    assert stamp is not None and stamp[1] == "1970-01-01 00:00:00 +0000 UTC"
    expr = parse('{a="b"} | line_format `{{ __timestamp__ }}`')
    assert isinstance(expr, LogExpr)
    half = run(expr.stages, {}, "", 1_796_576_600_500_000_000)
    assert half is not None and half[1] == "2026-12-06 17:03:20.5 +0000 UTC"


def test_record_labels_split_into_stream_labels_and_structured_metadata() -> None:
    record = LogRecord(
        time_ns=1, body="b", service="cart", severity=Severity.ERROR,
        trace_id="0af7651916cd43dd8448eb211c80319c", span_id="b7ad6b7169203331",
        attributes={"order.id": 7, "trace_id": "shadowed"}, resource={"k8s.pod.name": "p1"},
    )  # fmt: skip
    stream = stream_labels(record)
    assert stream == {"service_name": "cart", "k8s_pod_name": "p1"}
    assert structured_metadata(record, stream) == {
        "order_id": "7",
        "trace_id": "0af7651916cd43dd8448eb211c80319c",  # the record's id wins
        "span_id": "b7ad6b7169203331",
        "detected_level": "error",
        "level": "error",
    }
    assert structured_metadata(record, {**stream, "level": "warn"})["detected_level"] == "error"
    assert "level" not in structured_metadata(record, {**stream, "level": "warn"})


def test_map_attributes_are_flattened_into_labels_as_loki_does() -> None:
    """Loki's OTLP ingestion (`attributeToLabels`): a map is one label per leaf, named
    `key_subkey`; lists keep their JSON text."""
    record = LogRecord(
        time_ns=1, body="b", service="cart",
        attributes={"http": {"request": {"method": "GET"}, "status": 200}, "ids": [1, 2]},
        resource={"k8s": {"pod.name": "p1"}},
    )  # fmt: skip
    stream = stream_labels(record)
    assert stream == {"service_name": "cart", "k8s_pod_name": "p1"}
    assert structured_metadata(record, stream) == {
        "http_request_method": "GET", "http_status": "200", "ids": "[1,2]",
        "detected_level": "unknown",  # no severity, and the line names no level
    }  # fmt: skip


def test_label_filters_treat_errors_and_missing_labels_as_loki() -> None:
    """pkg/logql/log/label_filter.go (Loki 3, #12378): numeric and duration filters compare
    on an entry with an error too (Loki 2 let it pass); one without the label passes none; a
    value that does not convert keeps the entry with LabelFilterErr and Go's reason, unless
    it has an error already."""
    assert _run("| json | latency > 10ms", "not json") is None  # no latency label
    assert _run("| json | status >= 500", "not json") is None
    assert _run("| logfmt | a > 1 and b > 1", "a=x b=0") is None  # b > 1 still runs
    both = _run("| logfmt | a > 1 | b > 1", "a=x b=y")
    assert both is not None and both[0]["__error_details__"] == (
        'strconv.ParseFloat: parsing "x": invalid syntax'  # the first error stays
    )
    assert _run("| logfmt | latency > 10ms", "status=200") is None  # no latency label
    assert _run("| logfmt | status > 100", "latency=5ms") is None
    slow = _run("| logfmt | latency > 10ms", "latency=soon")
    assert slow is not None
    assert (slow[0]["__error__"], slow[0]["__error_details__"]) == (
        "LabelFilterErr",
        'time: invalid duration "soon"',
    )
    spaced = _run("| logfmt | status > 100", 'status=" 200"')
    assert spaced is not None and spaced[0]["__error_details__"] == (
        'strconv.ParseFloat: parsing " 200": invalid syntax'
    )
    assert _run("| logfmt | status > 100 or status > 0", "status=nope") is not None
    assert _run('| logfmt | status > 100 and app = "x"', "status=nope app=y") is None
    kept = _run("| logfmt | status >= 200", "status=200")
    assert kept is not None and "__error__" not in kept[0]


@pytest.mark.parametrize(
    ("line", "kept", "error"),
    [
        ("took=0", False, None),  # Go's ParseDuration reads "0" as 0
        ("took=1500ms", True, None),
        ("took=1m2.5s", True, None),
        ("took=-3s", False, None),
        ("took=.5h", True, None),
        ("took=2d", True, 'time: invalid duration "2d"'),  # Go has no `d`: an error, kept
        ("took=2.s", True, None),  # "2." is 2, as Go reads it
    ],
)
def test_duration_filters_read_values_as_go_does(line: str, kept: bool, error: str | None) -> None:
    out = _run("| logfmt | took > 1s", line)
    assert (out is not None) is kept
    if out is not None:
        assert out[0].get("__error_details__") == error


def test_keep_keeps_the_error_labels_and_label_format_renames_as_loki() -> None:
    kept = _run("| json | keep level", "not json", level="info", pod="p")
    assert kept is not None and set(kept[0]) == {"level", "__error__", "__error_details__"}
    # A rename of a missing label does nothing; templates see the renames before them.
    same = _run("| label_format team=missing", "x", team="core")
    assert same is not None and same[0] == {"team": "core"}
    greeted = _run('| logfmt | label_format who=user, greeting="hi {{.who}}"', "user=bob")
    assert greeted is not None and greeted[0]["greeting"] == "hi bob"
    assert "user" not in greeted[0]


def test_parsers_keep_number_text_and_the_first_value_of_a_key_as_loki() -> None:
    """JSON numbers are their JSON text (Loki reads them raw); a key extracted twice keeps
    its first value (Loki 3.6); only a label the entry came with makes `_extracted`."""
    numbers = _run("| json", '{"lat": 1.0, "big": 1e3, "ratio": 1.50, "n": -7}')
    assert numbers is not None
    assert numbers[0] == {"lat": "1.0", "big": "1e3", "ratio": "1.50", "n": "-7"}
    twice = _run("| logfmt", "a=1 a=2 level=debug")
    assert twice is not None and twice[0] == {"a": "1", "level": "debug"}
    again = _run("| logfmt | logfmt", "user=bob")
    assert again is not None and again[0] == {"user": "bob"}
    clash = _run("| logfmt", "level=error", level="info")
    assert clash is not None and clash[0] == {"level": "info", "level_extracted": "error"}
    deep = _run("| json", "[" * 5000 + "]" * 5000)
    assert deep is not None and deep[0]["__error__"] == "JSONParserErr"
    nan = _run("| json", '{"x": NaN}')
    assert nan is not None and nan[0]["__error__"] == "JSONParserErr"


@pytest.mark.parametrize(
    ("line", "labels"),
    [
        ("url=/api?x=1 level=info", {"level": "info"}),  # `=` in a value: that pair skipped
        ('msg="a\tb" level=warn', {"msg": "a\tb", "level": "warn"}),  # raw TAB in quotes
        ('msg="it\\\'s" level=error', {"msg": "it's", "level": "error"}),
        ('msg="say \\"hi\\"" n=1', {"msg": 'say "hi"', "n": "1"}),
        ('bad="\\q" ok=1', {"ok": "1"}),  # an escape it cannot read: that pair skipped
        ('a"b=1 c=2', {"c": "2"}),  # a quote in a key
        ("=1 d=4", {"d": "4"}),  # no key
        ("alone e= f=6", {"f": "6"}),  # a key alone, an empty value: nothing
        ('g="open h=8', {}),  # an unterminated quote ends the line
        ('x="1"y=2', {"x": "1", "y": "2"}),
        ('u="caf\\u00e9 \\\\ x" v=w', {"u": "café \\ x", "v": "w"}),
    ],
)
def test_logfmt_reads_lines_as_lokis_decoder(line: str, labels: dict[str, str]) -> None:
    out = _run("| logfmt", line)
    assert out is not None and out[0] == labels


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab= \"\\\\\tu0'{}:,[]1.e")), max_size=60))
def test_the_parsers_take_any_line(line: str) -> None:
    """Hostile lines: the parsers add labels or an error, never raise."""
    for parser in ("| logfmt", "| json", "| logfmt | json"):
        out = _run(parser, line)
        assert out is not None and all(isinstance(v, str) for v in out[0].values())


@pytest.mark.parametrize(
    ("body", "level"),
    [
        ('{"msg": "x", "level": "WARN"}', "warn"),
        ('{"ctx": {"severity": "dbg"}}', "debug"),  # nested, abbreviated
        ("ts=1 level=error msg=boom", "error"),
        ("ts=1 lvl=information", "info"),
        ("GET /cart failed: ERROR timeout", "error"),
        ("request finished: info", "info"),
        ("an errand was run", "unknown"),  # `err` only as a word
        ("plain text", "unknown"),
        ('{"level": "chatty"} fatal', "fatal"),  # no JSON object: words
    ],
)
def test_a_record_without_a_severity_gets_lokis_detected_level(body: str, level: str) -> None:
    """As Loki's distributor (discover_log_levels): a level field of a JSON or logfmt line,
    else a level word standing alone, else `unknown`."""
    record = LogRecord(time_ns=1, body=body, service="cart")
    assert structured_metadata(record, {})["detected_level"] == level
    assert "level" not in structured_metadata(record, {})


def test_json_extractions_read_paths_as_lokis_expression_parser() -> None:
    line = ('{"user": {"id": 7, "name": "ann", "tags": ["a", "b"], "x y": 1.50},'
            ' "items": [{"sku": "k1"}, {"sku": "k2"}], "ok": false, "none": null, "app": "z",'
            ' "n": 1e3}')  # fmt: skip
    out = _run(
        '| json uid="user.id", second="items[1].sku", spaced=`user["x y"]`, tags="user.tags",'
        ' user, ok, none, missing="nope.x", app, n',
        line,
        app="web",
    )
    assert out is not None
    assert out[0] == {
        "app": "web", "uid": "7", "second": "k2", "spaced": "1.50", "tags": '["a","b"]',
        "user": '{"id":7,"name":"ann","tags":["a","b"],"x y":1.50}', "ok": "false",
        "app_extracted": "z", "n": "1e3",
    }  # fmt: skip
    broken = _run('| json a="b"', "not json")
    assert broken is not None and broken[0]["__error__"] == "JSONParserErr"


def test_logfmt_extractions_take_the_named_keys() -> None:
    out = _run('| logfmt status, took="duration", app', 'status=500 duration=1.5s app=x path=/a',
               app="web")  # fmt: skip
    assert out is not None
    assert out[0] == {"app": "web", "status": "500", "took": "1.5s", "app_extracted": "x"}
    filtered = _run('| logfmt took="duration" | took > 1s', "duration=1.5s")
    assert (
        filtered is not None
        and _run('| logfmt took="duration" | took > 2s', "duration=1.5s") is None
    )


ENVOY = ('[2026-12-07T10:00:00.000Z] "GET /cart/items HTTP/1.1" 503 UF 0 91 12 - '
         '"10.0.0.7" "curl/8.5" "c0ffee" "cart:8080" "10.0.0.9:8080"')  # fmt: skip


def test_pattern_reads_an_envoy_access_log_line() -> None:
    out = _run('| pattern `[<_>] "<method> <path> <_>" <status> <flags> <_> <bytes> <took> <_>`'
               " | status_extracted >= 500", ENVOY, status="x")  # fmt: skip
    assert out is not None
    assert out[0] == {"status": "x", "method": "GET", "path": "/cart/items",
                      "status_extracted": "503", "flags": "UF", "bytes": "91",
                      "took": "12"}  # fmt: skip
    # A leading literal must start the line; a literal not found ends the match there.
    assert _run('| pattern "x <a>"', "y x 1") == ({}, "y x 1")
    cut = _run('| pattern "<a> - <b> + <c>"', "1 - 2 and 3")
    assert cut is not None and cut[0] == {"a": "1", "b": "2 and 3"}


def test_regexp_unpack_and_decolorize() -> None:
    out = _run(r'| regexp `"(?P<method>\w+) (?P<path>[^ ]+)[^"]*" (?P<status>\d+)( (?P<x>z))?`',
               ENVOY)  # fmt: skip
    assert out is not None and out[0] == {"method": "GET", "path": "/cart/items", "status": "503"}
    assert _run(r"| regexp `(?P<n>\d+)x`", "no digits") == ({}, "no digits")
    packed = _run("| unpack", '{"_entry": "the line", "pod": "p-1", "n": 3}', pod="q")
    assert packed == ({"pod": "q", "pod_extracted": "p-1"}, "the line")
    assert _run("| unpack", "plain")[0]["__error__"] == "JSONParserErr"  # type: ignore[index]
    assert _run("| decolorize", "\x1b[31mred\x1b[0m text") == ({}, "red text")


@pytest.mark.parametrize(
    ("stage", "message"),
    [('| pattern "<a><b>"', "found consecutive capture '<a><b>'"),
     ('| pattern "<_> x"', "at least one capture is required"),
     ('| pattern "<a> <a>"', "duplicate capture name (a)"),
     ('| regexp "(a)"', "at least one named capture must be supplied"),
     ('| regexp "(?P<1a>x)"', "invalid extracted label name '1a'"),
     ('| regexp "(?P<a>"', "invalid regular expression")],
)  # fmt: skip
def test_bad_parsers_are_refused_as_loki(stage: str, message: str) -> None:
    with pytest.raises(LogQLError) as info:
        parse('{a="b"} ' + stage)
    assert message in str(info.value)
