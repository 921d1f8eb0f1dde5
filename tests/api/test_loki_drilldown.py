"""The Loki routes Grafana's Logs Drilldown asks beside the query API: `index/volume_range`,
`detected_labels`, `detected_fields` and `detected_field/{name}/values`, over real HTTP
(uvicorn on 127.0.0.1), against known lines pushed through the real push route into a
memory store and a DuckDB file; every answer is checked whole against what the lines give."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from meshscope.api import loki_index
from meshscope.api.loki_detected import loki_detected_routes
from meshscope.api.loki_index import loki_index_routes
from meshscope.clock import ManualClock
from meshscope.ingest.loki_http import loki_push_routes
from meshscope.pipeline.chain import Pipeline
from meshscope.pipeline.writer import BatchWriter, WriterSettings
from meshscope.query.promql.values import format_time
from meshscope.store.base import Storage
from meshscope.store.duckdb import DuckDBStorage
from meshscope.store.memory import MemoryStorage
from tests.serving import serving

S = 10**9
MS = 10**6
T0 = 1_699_999_200 * S  # a whole hour: the multiples of 60 s and 180 s start there
NOW = T0 + 1800 * S
END = T0 + 180 * S

# (service, seconds after T0, line): the volume_range lines, stream {team="vr"}.
VOLUME = [("web", 5, "GET /a 200"), ("web", 20, "GET /bb 200"), ("api", 30, "api call two"),
          ("api", 70, "api call one"), ("web", 130, "GET /ccc 500")]  # fmt: skip
# One line every 2 s, all of a size: what extrapolation must get back exactly.
BULK = [(2 * k, f"bulk line {k:03d}") for k in range(90)]
UUID = "123e4567-e89b-12d3-a456-426614174000"
LABEL_STREAMS = [
    {"service_name": "labels-a", "cluster": "1", "pod": "7", "canary": "0", "request_id": UUID,
     "shard": "1", "version": "0", "zone": "1"},
    {"service_name": "labels-a", "cluster": "2", "pod": "7", "canary": "1",
     "request_id": "0123456789abcdef0123456789abcdef", "shard": "2", "version": "2",
     "zone": "eu"},
    {"service_name": "labels-b", "cluster": "2", "pod": "7", "canary": "1",
     "request_id": f"{{{UUID}}}", "shard": "3.5", "version": "2", "zone": "eu", "env": "prod"},
]  # fmt: skip
JSON_LINE = json.dumps({
    "msg": "start", "user": {"id": 7, "name": "ann"}, "latency": "250ms", "size": "10MiB",
    "ok": True, "ratio": 0.25, "service_name": "dup", "code": "E42", "tags": ["a"],
    "none": None,
})  # fmt: skip
LOGFMT_LINE = 'msg="next step" user_id=8 latency=1.5s size="3 kB" ok=false count=12 code=200'
# (seconds after T0, line, structured metadata), oldest first: stream {service_name="fields"}.
FIELD_LINES = [(100, JSON_LINE, {}), (101, "just some words", {"tenant": "beta"}),
               (102, LOGFMT_LINE, {"tenant": "acme"})]  # fmt: skip
FIELDS = {"query": '{service_name="fields"}', "start": str(T0), "end": str(END)}


def _push_body() -> bytes:
    streams: list[dict[str, Any]] = []
    for service, at, line in VOLUME:
        streams.append({"stream": {"team": "vr", "service_name": service},
                        "values": [[str(T0 + at * S), line]]})  # fmt: skip
    streams.append({"stream": {"team": "bulk", "service_name": "bulk"},
                    "values": [[str(T0 + at * S), line] for at, line in BULK]})  # fmt: skip
    for n, labels in enumerate(LABEL_STREAMS):
        streams.append({"stream": labels, "values": [[str(T0 + (150 + n) * S), f"labels {n}"]]})
    streams.append({"stream": {"service_name": "fields"},
                    "values": [[str(T0 + at * S), line, metadata]
                               for at, line, metadata in FIELD_LINES]})  # fmt: skip
    return json.dumps({"streams": streams}).encode()


@pytest.fixture(scope="module", params=["memory", "duckdb"])
def base(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = Path(tmp_path_factory.mktemp("drilldown")) / "store.duckdb"
    storage: Storage = MemoryStorage() if request.param == "memory" else DuckDBStorage(path)
    clock = ManualClock(NOW)
    writer = BatchWriter(Pipeline(storage, clock), WriterSettings(flush_interval_s=3600))
    writer.start()
    routes = [*loki_push_routes(writer), *loki_index_routes(storage, clock),
              *loki_detected_routes(storage, clock)]  # fmt: skip
    try:
        with serving(Starlette(routes=routes)) as url:
            response = httpx.post(f"{url}/loki/api/v1/push", content=_push_body(),
                                  headers={"Content-Type": "application/json"})  # fmt: skip
            assert response.status_code == 204, response.text
            yield url
    finally:
        writer.stop()
        storage.close()


def _get(base: str, path: str, **params: str) -> Any:
    response = httpx.get(base + path, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


def _size(line: str) -> int:
    return len(line.encode())


def _volume_range(base: str, **params: str) -> dict[str, Any]:
    body = _get(base, "/loki/api/v1/index/volume_range", **params)
    assert body["status"] == "success" and set(body["data"]) == {"resultType", "result"}
    data: dict[str, Any] = body["data"]
    return data


def _at(ms: int) -> float | int:
    return format_time(ms)


def test_volume_range_answers_each_interval_at_its_end(base: str) -> None:
    """60 s steps over [T0, T0+180 s]: web in the first and last interval, api in the first
    two; inner intervals answered at their end - 1 ms, the last at `end`; series ordered by
    their first sample, largest first."""
    data = _volume_range(base, query='{team="vr"}', targetLabels="service_name",
                         start=str(T0), end=str(END), step="60s")  # fmt: skip
    first, second, last = (
        _at((T0 + 60 * S) // MS - 1),
        _at((T0 + 120 * S) // MS - 1),
        _at(END // MS),
    )
    web = _size("GET /a 200") + _size("GET /bb 200")
    assert data == {
        "resultType": "matrix",
        "result": [
            {"metric": {"service_name": "web"},
             "values": [[first, str(web)], [last, str(_size("GET /ccc 500"))]]},
            {"metric": {"service_name": "api"},
             "values": [[first, str(_size("api call two"))],
                        [second, str(_size("api call one"))]]},
        ],
    }  # fmt: skip
    # `limit` applies per interval: the first keeps web only.
    limited = _volume_range(base, query='{team="vr"}', targetLabels="service_name",
                            start=str(T0), end=str(END), step="60s", limit="1")  # fmt: skip
    assert [(s["metric"]["service_name"], [v[0] for v in s["values"]])
            for s in limited["result"]] == [("web", [first, last]), ("api", [second])]  # fmt: skip
    default = _volume_range(base, query='{team="vr"}', targetLabels="service_name",
                            start=str(T0), end=str(END), step="60s", limit="0")  # fmt: skip
    assert default == data  # 0 is the default limit, as in Loki
    # By label name: every stream has both, so the two series are equal; ties by name.
    labels = _volume_range(base, query='{team="vr"}', targetLabels="service_name,team",
                           aggregateBy="labels", start=str(T0), end=str(END),
                           step="60s")  # fmt: skip
    assert [s["metric"] for s in labels["result"]] == [{"service_name": ""}, {"team": ""}]
    assert labels["result"][0]["values"] == labels["result"][1]["values"]


def test_volume_range_with_one_sample_per_series_is_a_vector(base: str) -> None:
    whole = _volume_range(base, query='{team="vr"}', targetLabels="service_name",
                          start=str(T0), end=str(END), step="180s")  # fmt: skip
    web = sum(_size(line) for service, _, line in VOLUME if service == "web")
    api = sum(_size(line) for service, _, line in VOLUME if service == "api")
    assert whole == {"resultType": "vector", "result": [
        {"metric": {"service_name": "web"}, "value": [_at(END // MS), str(web)]},
        {"metric": {"service_name": "api"}, "value": [_at(END // MS), str(api)]},
    ]}  # fmt: skip
    # A start off the step: the first interval starts there; equal volumes ordered by labels.
    start, end = T0 + 31 * S, T0 + 150 * S
    off = _volume_range(base, query='{team="vr"}', targetLabels="service_name",
                        start=str(start), end=str(end), step="60")  # fmt: skip
    assert off == {"resultType": "vector", "result": [
        {"metric": {"service_name": "api"},
         "value": [_at((T0 + 120 * S) // MS - 1), str(_size("api call one"))]},
        {"metric": {"service_name": "web"},
         "value": [_at(end // MS), str(_size("GET /ccc 500"))]},
    ]}  # fmt: skip
    none = _volume_range(base, query='{team="none"}', start=str(T0), end=str(END), step="60s")
    assert none == {"resultType": "vector", "result": []}


def test_volume_range_default_step_is_a_250th_of_the_range(base: str) -> None:
    """180 s / 250 < 1: one-second intervals, each line alone in its own."""
    data = _volume_range(base, query='{team="vr"}', targetLabels="service_name",
                         start=str(T0), end=str(END))  # fmt: skip
    want: dict[str, list[list[Any]]] = {}
    for service, at, line in VOLUME:
        want.setdefault(service, []).append([_at((T0 + (at + 1) * S) // MS - 1), str(_size(line))])
    assert data["resultType"] == "matrix"
    assert {s["metric"]["service_name"]: s["values"] for s in data["result"]} == want


@pytest.mark.parametrize("records", [20, 35])
def test_volume_range_past_the_bound_samples_each_interval(
    base: str, monkeypatch: pytest.MonkeyPatch, records: int
) -> None:
    """Bulk logs 30 equal lines per minute. With a bound of 20 records the first scan is
    all in the last interval, with 35 it ends in the middle one (read again alone); older
    intervals are sampled with `records // 3` each: every one extrapolates back to 30."""
    monkeypatch.setattr(loki_index, "INDEX_SCAN_RECORDS", records)
    monkeypatch.setattr(loki_index, "MIN_INTERVAL_RECORDS", 1)
    data = _volume_range(base, query='{team="bulk"}', start=str(T0), end=str(END), step="60s")
    size = 30 * _size(BULK[0][1])
    assert data == {"resultType": "matrix", "result": [{"metric": {"team": "bulk"}, "values": [
        [_at((T0 + 60 * S) // MS - 1), str(size)], [_at((T0 + 120 * S) // MS - 1), str(size)],
        [_at(END // MS), str(size)],
    ]}]}  # fmt: skip


def test_volume_range_steps_are_checked_as_loki_checks_them(base: str) -> None:
    ok = {"query": '{team="vr"}', "start": str(T0), "end": str(T0 + 110 * S)}
    assert _volume_range(base, **ok, step="0.01")["resultType"] == "matrix"  # 11,000 steps
    for step, end in (("0.01", T0 + 110 * S + 10 * MS), ("0.001", END)):
        response = httpx.get(f"{base}/loki/api/v1/index/volume_range",
                             params={**ok, "end": str(end), "step": step})  # fmt: skip
        assert response.status_code == 400
        assert "exceeded maximum resolution of 11,000 points per timeseries" in response.text
    for step in ("0", "-5", "5x"):
        response = httpx.get(f"{base}/loki/api/v1/index/volume_range", params={**ok, "step": step})
        assert response.status_code == 400 and "step" in response.text, step


def test_detected_labels_leave_out_id_like_labels(base: str) -> None:
    body = _get(base, "/loki/api/v1/detected_labels", query='{service_name=~"labels.*"}',
                start=str(T0), end=str(END))  # fmt: skip
    # cluster and pod are numbers, kept as static labels; canary is 0/1 flags; request_id
    # (UUIDs in three spellings), shard (numbers) and version (0 and 2) look like ids.
    assert body == {"detectedLabels": [
        {"label": "canary", "cardinality": 2}, {"label": "cluster", "cardinality": 2},
        {"label": "env", "cardinality": 1}, {"label": "pod", "cardinality": 1},
        {"label": "service_name", "cardinality": 2}, {"label": "zone", "cardinality": 2},
    ]}  # fmt: skip
    everything = _get(base, "/loki/api/v1/detected_labels")  # the last hour of NOW
    names = [found["label"] for found in everything["detectedLabels"]]
    assert names == ["canary", "cluster", "env", "pod", "service_name", "team", "zone"]
    empty = _get(base, "/loki/api/v1/detected_labels", start=str(NOW), end=str(NOW + S))
    assert empty == {"detectedLabels": []}


def _field(label: str, type_: str, values: int, parsers: list[str] | None,
           path: list[str] | None = None) -> dict[str, Any]:  # fmt: skip
    out: dict[str, Any] = {"label": label, "type": type_, "cardinality": values,
                           "parsers": parsers}  # fmt: skip
    if path:
        out["jsonPath"] = path
    return out


BOTH = ["logfmt", "json"]  # the newest line is logfmt
ALL_FIELDS = [
    _field("code", "int", 2, BOTH, ["code"]),  # typed by the newest value, 200 (then E42)
    _field("count", "int", 1, ["logfmt"]),
    _field("detected_level", "string", 1, None),
    _field("latency", "duration", 2, BOTH, ["latency"]),
    _field("msg", "string", 2, BOTH, ["msg"]),
    _field("ok", "boolean", 2, BOTH, ["ok"]),
    _field("ratio", "float", 1, ["json"], ["ratio"]),
    _field("service_name_extracted", "string", 1, ["json"], ["service_name"]),
    _field("size", "bytes", 2, BOTH, ["size"]),
    _field("tenant", "string", 2, None),
    _field("user_id", "int", 2, BOTH, ["user", "id"]),
    _field("user_name", "string", 1, ["json"], ["user", "name"]),
]


def test_detected_fields_of_json_logfmt_and_structured_metadata(base: str) -> None:
    body = _get(base, "/loki/api/v1/detected_fields", **FIELDS)
    assert body == {"fields": ALL_FIELDS, "limit": 1000}
    # Parsed by the query already (its errors on the other lines are no fields): the same.
    parsed = _get(base, "/loki/api/v1/detected_fields",
                  **{**FIELDS, "query": '{service_name="fields"} | json'})  # fmt: skip
    assert parsed == body


def test_detected_fields_read_the_newest_line_limit_lines_of_the_query(base: str) -> None:
    newest = _get(base, "/loki/api/v1/detected_fields", **FIELDS, line_limit="1")
    assert newest == {"limit": 1000, "fields": [
        _field("code", "int", 1, ["logfmt"]), _field("count", "int", 1, ["logfmt"]),
        _field("detected_level", "string", 1, None),
        _field("latency", "duration", 1, ["logfmt"]), _field("msg", "string", 1, ["logfmt"]),
        _field("ok", "boolean", 1, ["logfmt"]), _field("size", "bytes", 1, ["logfmt"]),
        _field("tenant", "string", 1, None), _field("user_id", "int", 1, ["logfmt"]),
    ]}  # fmt: skip
    no_errors = '{service_name="fields"} | json | __error__=""'
    only_json = _get(base, "/loki/api/v1/detected_fields", **{**FIELDS, "query": no_errors})
    assert only_json == {"limit": 1000, "fields": [
        _field("code", "string", 1, ["json"], ["code"]),
        _field("detected_level", "string", 1, None),
        _field("latency", "duration", 1, ["json"], ["latency"]),
        _field("msg", "string", 1, ["json"], ["msg"]),
        _field("ok", "boolean", 1, ["json"], ["ok"]),
        _field("ratio", "float", 1, ["json"], ["ratio"]),
        _field("service_name_extracted", "string", 1, ["json"], ["service_name"]),
        _field("size", "bytes", 1, ["json"], ["size"]),
        _field("user_id", "int", 1, ["json"], ["user", "id"]),
        _field("user_name", "string", 1, ["json"], ["user", "name"]),
    ]}  # fmt: skip
    plain = _get(base, "/loki/api/v1/detected_fields",
                 **{**FIELDS, "query": '{service_name="fields"} |= "words"'})  # fmt: skip
    assert plain == {"limit": 1000, "fields": [_field("detected_level", "string", 1, None),
                                               _field("tenant", "string", 1, None)]}  # fmt: skip
    assert _get(base, "/loki/api/v1/detected_fields", **{**FIELDS, "query": '{a="none"}'}) == {}


def test_detected_fields_limit_keeps_the_first_fields_seen(base: str) -> None:
    """The newest line's structured metadata comes first."""
    want = {"limit": 2, "fields": [_field("detected_level", "string", 1, None),
                                   _field("tenant", "string", 2, None)]}  # fmt: skip
    assert _get(base, "/loki/api/v1/detected_fields", **FIELDS, limit="2") == want
    assert _get(base, "/loki/api/v1/detected_fields", **FIELDS, field_limit="2") == want


def test_detected_field_values(base: str) -> None:
    def values(name: str, **params: str) -> Any:
        return _get(base, f"/loki/api/v1/detected_field/{name}/values", **FIELDS, **params)

    assert values("user_id") == {"values": ["7", "8"], "limit": 1000}
    # Sizes with a unit are written as Loki writes them back (go-humanize's SI form).
    assert values("size") == {"values": ["10MB", "3.0kB"], "limit": 1000}
    assert values("latency") == {"values": ["1.5s", "250ms"], "limit": 1000}
    assert values("tenant") == {"values": ["acme", "beta"], "limit": 1000}
    assert values("user_name") == {"values": ["ann"], "limit": 1000}
    assert values("user_id", limit="1") == {"values": ["8"], "limit": 1}  # the newest
    assert values("user_id", line_limit="1") == {"values": ["8"], "limit": 1000}
    assert values("service_name") == {}  # a stream label, not a field
    assert values("nope") == {}


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("index/volume_range", {"query": "{a=}"}, ""),
        ("index/volume_range", {"query": '{a="b"} |= "x"'}, "not a stream selector"),
        ("index/volume_range", {"query": '{a="b"}', "limit": "-1"}, "limit"),
        ("index/volume_range", {"query": '{a="b"}', "aggregateBy": "x"}, "aggregateBy"),
        ("index/volume_range", {"query": '{a="b"}', "start": "x"}, "start"),
        ("index/volume_range", {"query": '{a="b"}', "start": "20", "end": "10"}, "end"),
        ("detected_labels", {"query": '{a="b"} | json'}, "not a stream selector"),
        ("detected_labels", {"query": "{a"}, ""),
        ("detected_labels", {"since": "forever"}, "since"),
        ("detected_fields", {}, "query is required"),
        ("detected_fields", {"query": 'count_over_time({a="b"}[1m])'}, "not a log query"),
        ("detected_fields", {"query": '{a="b"}', "line_limit": "0"}, "positive"),
        ("detected_fields", {"query": '{a="b"}', "line_limit": "5001"}, "5000"),
        ("detected_fields", {"query": '{a="b"}', "limit": "x"}, "limit"),
        ("detected_fields", {"query": '{a="b"}', "field_limit": "-1"}, "positive"),
        ("detected_fields", {"query": '{a="b"}', "step": "0"}, "step"),
        ("detected_fields", {"query": '{a="b"}', "end": "5", "start": "10"}, "end"),
        ("detected_field/x/values", {"query": '{a="b"} |~ "("'}, ""),
        ("detected_field/x/values", {"query": '{a="b"}', "limit": "0"}, "positive"),
    ],
)
def test_bad_drilldown_requests_are_400(base: str, path: str, params: dict[str, str],
                                        message: str) -> None:  # fmt: skip
    response = httpx.get(f"{base}/loki/api/v1/{path}", params=params)
    assert response.status_code == 400, response.text
    assert message in response.text
    post = httpx.post(f"{base}/loki/api/v1/{path}", data=params)  # Loki takes forms too
    assert post.status_code == 400, post.text
