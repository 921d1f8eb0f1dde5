"""The Loki query API as Grafana's Loki data source calls it, over real HTTP (uvicorn on
127.0.0.1): logs pushed through the real push route and pipeline into a memory store and a
DuckDB file, then queried with the data source's exact parameters; shapes are checked field
by field and results against the known generated lines (tests/loki_data.py)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from starlette.applications import Starlette

from meshscope.api import loki_index
from meshscope.api.loki import loki_query_routes
from meshscope.api.loki_index import loki_index_routes
from meshscope.clock import ManualClock
from meshscope.ingest.loki_http import loki_push_routes
from meshscope.pipeline.chain import Pipeline
from meshscope.pipeline.writer import BatchWriter, WriterSettings
from meshscope.store.base import Storage
from meshscope.store.duckdb import DuckDBStorage
from meshscope.store.memory import MemoryStorage
from tests.loki_data import LINES, T0, S, protobuf_push
from tests.serving import serving

NOW = T0 + 1800 * S  # half an hour after the first line; the last is at T0 + 1790 s
START, END = T0, T0 + 1800 * S


@pytest.fixture(scope="module", params=["memory", "duckdb"])
def base(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = Path(tmp_path_factory.mktemp("loki")) / "store.duckdb"
    storage: Storage = MemoryStorage() if request.param == "memory" else DuckDBStorage(path)
    clock = ManualClock(NOW)
    writer = BatchWriter(Pipeline(storage, clock), WriterSettings(flush_interval_s=3600))
    writer.start()
    routes = [*loki_push_routes(writer), *loki_query_routes(storage, clock),
              *loki_index_routes(storage, clock)]  # fmt: skip
    app = Starlette(routes=routes)
    try:
        with serving(app) as url:
            for chunk in (LINES[:200], LINES[200:]):
                response = httpx.post(
                    f"{url}/loki/api/v1/push",
                    content=protobuf_push(chunk),
                    headers={"Content-Type": "application/x-protobuf"},
                )
                assert response.status_code == 204, response.text
            yield url
    finally:
        writer.stop()
        storage.close()


def _get(base: str, path: str, **params: Any) -> dict[str, Any]:
    response = httpx.get(base + path, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert body["status"] == "success"
    return body


def _grafana_range(base: str, query: str, **extra: Any) -> dict[str, Any]:
    """query_range exactly as Grafana's Loki data source sends it."""
    params = {
        "direction": "backward",
        "end": str(END),
        "limit": "1000",
        "query": query,
        "start": str(START),
        "step": "60000ms",
    } | extra
    data: dict[str, Any] = _get(base, "/loki/api/v1/query_range", **params)["data"]
    return data


def test_log_query_streams_shape_and_content(base: str) -> None:
    data = _grafana_range(base, '{service_name="pay"} |= "status=500"')
    assert set(data) == {"resultType", "result", "stats"}
    assert data["resultType"] == "streams"
    assert set(data["stats"]["summary"]) >= {
        "totalLinesProcessed",
        "totalBytesProcessed",
        "execTime",
        "totalEntriesReturned",
    }
    want = [x for x in LINES if x.service == "pay" and "status=500" in x.body]
    got: list[tuple[int, str, dict[str, str]]] = []
    for stream in data["result"]:
        assert set(stream) == {"stream", "values"}
        for value in stream["values"]:
            assert isinstance(value[0], str) and len(value) == 2
            got.append((int(value[0]), value[1], stream["stream"]))
    assert sorted(got, key=lambda g: -g[0]) == got or len(data["result"]) > 1
    assert sorted(t for t, _, _ in got) == [x.time_ns for x in want] and want
    for t, line, labels in got:
        source = next(x for x in want if x.time_ns == t)
        assert line == source.body
        # Without the categorize-labels flag, structured metadata is merged into the stream.
        ids = {"trace_id": source.trace_id, "span_id": source.span_id} if source.trace_id else {}
        # A protobuf push's `traceID` (upper case) is kept as pushed, beside `trace_id`.
        if "traceID" in labels:
            assert labels.pop("traceID") == source.trace_id.upper()
        assert labels == {
            "service_name": "pay",
            "env": "prod",
            "level": source.level,
            "detected_level": labels["detected_level"],
            **ids,
        }
    assert data["stats"]["summary"]["totalEntriesReturned"] == len(want)


def test_direction_limit_and_end_exclusive(base: str) -> None:
    newest = _grafana_range(base, '{env="dev"}', limit="5")["result"]
    times = [int(v[0]) for s in newest for v in s["values"]]
    web = sorted((x.time_ns for x in LINES if x.labels["env"] == "dev"), reverse=True)
    assert sorted(times, reverse=True) == web[:5]
    oldest = _grafana_range(base, '{env="dev"}', limit="5", direction="forward")["result"]
    times = [int(v[0]) for s in oldest for v in s["values"]]
    assert sorted(times) == sorted(web)[:5]
    last = web[0]
    edge = _grafana_range(base, '{env="dev"}', start=str(last), end=str(last))["result"]
    assert edge == []  # end is exclusive
    edge = _grafana_range(base, '{env="dev"}', start=str(last), end=str(last + 1))["result"]
    assert [v[0] for s in edge for v in s["values"]] == [str(last)]


def test_json_parser_and_label_filter(base: str) -> None:
    data = _grafana_range(base, '{env=~"prod|dev"} | json | status >= 500 | __error__=""')
    got = sorted(int(v[0]) for s in data["result"] for v in s["values"])
    want = [x.time_ns for x in LINES if x.body.startswith("{") and x.status >= 500]
    assert got == want and want
    assert all(s["stream"]["status"] in ("500", "503") for s in data["result"])
    assert all("user_id" in s["stream"] for s in data["result"])


def test_metric_query_matrix_counts_per_level(base: str) -> None:
    data = _grafana_range(base, 'sum by (level) (count_over_time({env=~".+"}[5m]))', step="300")
    assert data["resultType"] == "matrix"
    for series in data["result"]:
        assert set(series) == {"metric", "values"}
        assert set(series["metric"]) == {"level"}
        for t, value in series["values"]:
            assert isinstance(t, int) and isinstance(value, str)
            t_ns = t * S
            want = sum(
                1
                for x in LINES
                if x.level == series["metric"]["level"] and t_ns - 300 * S < x.time_ns <= t_ns
            )
            assert int(value) == want
    assert {s["metric"]["level"] for s in data["result"]} == {x.level for x in LINES}
    first_steps = {s["metric"]["level"]: s["values"][0][0] for s in data["result"]}
    assert first_steps["info"] == START // S  # only the line at exactly T0 is in (T0-5m, T0]


def test_rate_step_as_duration_and_default_step(base: str) -> None:
    data = _grafana_range(base, 'sum(rate({service_name="pay"}[10m]))', step="10m")
    (series,) = data["result"]
    assert series["metric"] == {}
    for t, value in series["values"]:
        count = sum(1 for x in LINES if x.service == "pay" and t * S - 600 * S < x.time_ns <= t * S)
        assert float(value) == pytest.approx(count / 600)
    default = _get(
        base,
        "/loki/api/v1/query_range",
        query='count_over_time({env="dev"}[1m])',
        start=str(START),
        end=str(END),
    )["data"]
    steps = sorted({t for s in default["result"] for t, _ in s["values"]})
    # Loki's defaultQueryRangeStep: max(floor(range / 250 s), 1) seconds.
    step = max(1, (END - START) // S // 250)
    assert min(steps) >= START // S and len(steps) <= (END - START) // S // step + 1
    assert min(b - a for a, b in pairwise(steps)) == step


def test_streams_come_in_the_order_of_their_label_strings(base: str) -> None:
    """As Loki sorts a log query's streams, in either direction."""
    for direction in ("backward", "forward"):
        data = _grafana_range(base, '{env=~"prod|dev"}', limit="1000", direction=direction)
        keys = [sorted(stream["stream"].items()) for stream in data["result"]]
        texts = ["{" + ", ".join(f'{k}="{v}"' for k, v in key) + "}" for key in keys]
        assert len(texts) > 2 and texts == sorted(texts)


def test_instant_queries(base: str) -> None:
    at = T0 + 1200 * S
    data = _get(
        base,
        "/loki/api/v1/query",
        direction="backward",
        limit="1000",
        time=str(at),
        query='sum by (service_name) (count_over_time({env=~".+"}[10m]))',
    )["data"]
    assert data["resultType"] == "vector"
    got = {r["metric"]["service_name"]: r["value"] for r in data["result"]}
    want = Counter(x.service for x in LINES if at - 600 * S < x.time_ns <= at)
    assert {k: int(v[1]) for k, v in got.items()} == want
    assert {v[0] for v in got.values()} == {at // S}
    health = _get(base, "/loki/api/v1/query", query="vector(1)+vector(1)", time=str(at))
    assert health["data"]["result"] == [{"metric": {}, "value": [at // S, "2"]}]
    # x / 0 is NaN whatever x, as Loki's MergeBinOp (not Prometheus' +Inf).
    for query in ("vector(1)/vector(0)", "(vector(0)-vector(1))/vector(0)", "vector(0)/vector(0)"):
        divided = _get(base, "/loki/api/v1/query", query=query, time=str(at))
        assert divided["data"]["result"] == [{"metric": {}, "value": [at // S, "NaN"]}]
    logs = _get(base, "/loki/api/v1/query", query='{service_name="web"}', limit="3", time=str(at))[
        "data"
    ]
    assert logs["resultType"] == "streams"
    times = sorted((int(v[0]) for s in logs["result"] for v in s["values"]), reverse=True)
    assert (
        times
        == sorted(
            (x.time_ns for x in LINES if x.service == "web" and x.time_ns < at), reverse=True
        )[:3]
    )


def test_labels_values_and_series(base: str) -> None:
    window = {"start": str(START), "end": str(END)}
    labels = _get(base, "/loki/api/v1/labels", **window)["data"]
    assert labels == ["env", "level", "service_name"]  # no structured metadata, as in Loki
    values = _get(base, "/loki/api/v1/label/service_name/values", **window)["data"]
    assert values == ["cart", "pay", "web"]
    values = _get(base, "/loki/api/v1/label/level/values", query='{env="dev"}', **window)
    assert values["data"] == sorted({x.level for x in LINES if x.labels["env"] == "dev"})
    series = _get(base, "/loki/api/v1/series", **{"match[]": '{service_name="pay"}'}, **window)
    want = {(x.labels["env"], x.level) for x in LINES if x.service == "pay"}
    assert {(s["env"], s["level"]) for s in series["data"]} == want
    assert all(s["service_name"] == "pay" for s in series["data"])
    posted = httpx.post(
        base + "/loki/api/v1/series", data={"match[]": '{service_name="pay"}', **window}
    )
    assert posted.status_code == 200 and posted.json()["data"] == series["data"]
    empty = _get(base, "/loki/api/v1/labels", start=str(END + 3600 * S), end=str(END + 7200 * S))
    assert empty["data"] == []
    build = httpx.get(base + "/loki/api/v1/status/buildinfo").json()
    assert set(build) >= {"version", "revision", "branch"}


@pytest.mark.parametrize(
    ("path", "params", "needle"),
    [
        ("/loki/api/v1/query_range", {"query": '{a="b"'}, "parse error"),
        ("/loki/api/v1/query_range", {"query": ""}, "query is required"),
        ("/loki/api/v1/query_range", {"query": '{a="b"} | distinct x'}, "unsupported"),
        ("/loki/api/v1/query_range", {"query": '{a="b"}', "start": "yesterday"}, "invalid start"),
        ("/loki/api/v1/query_range", {"query": '{a="b"}', "limit": "100000"}, "max entries"),
        ("/loki/api/v1/query_range", {"query": '{a="b"}', "limit": "-1"}, "positive"),
        ("/loki/api/v1/query_range", {"query": '{a="b"}', "direction": "up"}, "direction"),
        ("/loki/api/v1/query_range", {"query": 'rate({a="b"}[1m])', "step": "0"}, "positive"),
        ("/loki/api/v1/query_range", {"query": 'rate({a="b"}[1m])', "step": "1ms"}, "11000"),
        ("/loki/api/v1/query_range", {"query": '{a="b"}', "start": "2", "end": "1"}, "end"),
        ("/loki/api/v1/query", {"query": '{a="b"}', "time": "x"}, "invalid time"),
        ("/loki/api/v1/label/bad-name/values", {}, "invalid label name"),
        ("/loki/api/v1/series", {"match[]": '{a="b"} |= "x"'}, "not a stream selector"),
        ("/loki/api/v1/labels", {"since": "forever"}, "invalid since"),
        ("/loki/api/v1/labels", {"since": "1s1m"}, "invalid since"),  # units out of order
        ("/loki/api/v1/query_range", {"query": 'rate({a="b"}[1m])', "step": "1h1h"}, "step"),
        ("/loki/api/v1/query_range", {"query": '{a="b"}', "since": "300y"}, "out of range"),
    ],
)
def test_bad_requests_get_a_plain_text_400(
    base: str, path: str, params: dict[str, str], needle: str
) -> None:
    response = httpx.get(base + path, params=params)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/plain")
    assert needle in response.text


def test_a_metric_query_over_failed_entries_is_a_pipeline_error(base: str) -> None:
    """As Loki (logqlmodel PipelineError): a 400 saying to skip the error on purpose; with
    `| __error__=""` or `| drop __error__` the query answers."""
    query = 'sum(count_over_time({service_name="pay"} | json [10m]))'
    response = httpx.get(base + "/loki/api/v1/query_range",
                         params={"query": query, "start": str(START), "end": str(END)})  # fmt: skip
    assert response.status_code == 400
    assert response.text.startswith("pipeline error: 'JSONParserErr' for series:")
    for skip in ('| __error__=""', "| drop __error__"):
        fixed = query.replace("| json", "| json " + skip)
        answered = _get(base, "/loki/api/v1/query_range", query=fixed, start=str(START),
                        end=str(END))  # fmt: skip
        assert answered["status"] == "success"


def test_numbers_apply_to_every_series_and_vector_matches_labels_as_loki(base: str) -> None:
    """A number applies to every series (`... * 2`, `10 - ...`); `vector(n)` is one series
    without labels, which a grouped side does not match (Loki's vectorBinop)."""
    grouped = 'sum by (env) (count_over_time({service_name="pay"}[10m]))'
    window = {"start": str(START), "end": str(END), "step": "600s"}
    plain = _get(base, "/loki/api/v1/query_range", query=grouped, **window)["data"]["result"]
    doubled = _get(base, "/loki/api/v1/query_range", query=f"{grouped} * 2", **window)
    flipped = _get(base, "/loki/api/v1/query_range", query=f"10 - {grouped}", **window)
    assert plain and len(doubled["data"]["result"]) == len(plain)
    for mine, twice, minus in zip(plain, doubled["data"]["result"], flipped["data"]["result"],
                                  strict=True):  # fmt: skip
        assert mine["metric"] == twice["metric"] == minus["metric"]
        assert [float(v) * 2 for _, v in mine["values"]] == [float(v) for _, v in twice["values"]]
        assert [10 - float(v) for _, v in mine["values"]] == [float(v) for _, v in minus["values"]]
    vector = _get(base, "/loki/api/v1/query_range", query=f"{grouped} + vector(1)", **window)
    assert vector["data"]["result"] == []


def _size(lines: list[Any]) -> int:
    return sum(len(line.body.encode()) for line in lines)


def test_index_stats_count_the_streams_entries_and_bytes_of_a_selector(base: str) -> None:
    """As Grafana's Loki data source asks before a query (`/index/stats`), against the
    known lines."""
    mid = T0 + 900 * S
    for query, start, end, chosen in (
        ('{service_name="pay"}', START, END, [x for x in LINES if x.service == "pay"]),
        ('{env="prod", level=~"warn|error"}', START, END,
         [x for x in LINES if x.labels["env"] == "prod" and x.level in ("warn", "error")]),
        ('{service_name=~".+"}', mid, END, [x for x in LINES if x.time_ns >= mid]),
        ('{service_name="none"}', START, END, []),
    ):  # fmt: skip
        params = {"query": query, "start": str(start), "end": str(end)}
        response = httpx.get(f"{base}/loki/api/v1/index/stats", params=params)
        assert response.status_code == 200, response.text
        streams = {tuple(sorted(x.labels.items())) for x in chosen}
        assert response.json() == {
            "streams": len(streams), "chunks": 0, "entries": len(chosen), "bytes": _size(chosen),
        }, query  # fmt: skip


def test_index_volume_by_the_selectors_labels_target_labels_or_label_names(base: str) -> None:
    def volume(query: str, **params: str) -> list[tuple[dict[str, str], int]]:
        body = _get(base, "/loki/api/v1/index/volume", query=query, start=str(START),
                    end=str(END), **params)  # fmt: skip
        assert body["data"]["resultType"] == "vector"
        for found in body["data"]["result"]:
            assert found["value"][0] == END // 10**9
        return [(found["metric"], int(found["value"][1])) for found in body["data"]["result"]]

    def size(**where: str) -> int:
        return _size([x for x in LINES if all(x.labels[k] == v for k, v in where.items())])

    # Largest first, ties by their labels.
    by_env = sorted(((size(env=e), e) for e in ("prod", "dev")), key=lambda t: (-t[0], t[1]))
    assert volume('{env=~".+"}') == [({"env": e}, n) for n, e in by_env]
    by_service = sorted(((size(service_name=v), v) for v in ("cart", "pay", "web")),
                        key=lambda t: (-t[0], t[1]))  # fmt: skip
    assert volume('{env=~".+"}', targetLabels="service_name") == [
        ({"service_name": v}, n) for n, v in by_service
    ]
    assert volume('{env=~".+"}', targetLabels="service_name", limit="1") == [
        ({"service_name": by_service[0][1]}, by_service[0][0])
    ]
    assert volume('{service_name="web"}', aggregateBy="labels",
                  targetLabels="service_name,level,nope") == [
        ({"level": ""}, size(service_name="web")), ({"service_name": ""}, size(service_name="web")),
    ]  # fmt: skip


def test_index_answers_over_more_records_than_it_reads_are_extrapolated(
    base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past INDEX_SCAN_RECORDS the newest records stand for the range: pay logs one line
    every 10 s, so 45 records cover ~450 s of the 1,800 and the estimate is ~4x them."""
    monkeypatch.setattr(loki_index, "INDEX_SCAN_RECORDS", 45)
    body = httpx.get(f"{base}/loki/api/v1/index/stats",
                     params={"query": '{service_name="pay"}', "start": str(START),
                             "end": str(END)}).json()  # fmt: skip
    pay = [x for x in LINES if x.service == "pay"]
    assert abs(body["entries"] - len(pay)) <= 0.05 * len(pay)
    assert abs(body["bytes"] - _size(pay)) <= 0.1 * _size(pay)


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("stats", {}, "query is required"),
        ("stats", {"query": " "}, "query is required"),
        ("stats", {"query": '{a="b"} |= "x"'}, "not a stream selector"),
        ("volume", {"query": "{a=}"}, ""),
        ("volume", {"query": '{a="b"}', "aggregateBy": "pods"}, "invalid aggregateBy"),
        ("volume", {"query": '{a="b"}', "limit": "-1"}, "limit"),
    ],
)
def test_bad_index_requests_are_400(base: str, path: str, params: dict[str, str],
                                    message: str) -> None:  # fmt: skip
    response = httpx.get(f"{base}/loki/api/v1/index/{path}", params=params)
    assert response.status_code == 400 and message in response.text


def test_latency_quantiles_from_log_lines(base: str) -> None:
    """What an SRE graphs from access logs: p99 of the logged durations per service, over
    HTTP as Grafana asks; the values are the durations' quantiles in seconds."""
    query = ('quantile_over_time(0.99, {env=~".+"} |= "status=" | logfmt'
             " | unwrap duration(duration) [30m]) by (service_name)")  # fmt: skip
    data = _get(base, "/loki/api/v1/query", query=query, time=str(END))["data"]
    assert data["resultType"] == "vector"
    got = {r["metric"]["service_name"]: float(r["value"][1]) for r in data["result"]}
    logfmt = [x for x in LINES if not x.body.startswith("{") and x.time_ns > END - 1800 * S]
    want = {
        service: float(np.quantile([x.duration_ms / 1000 for x in logfmt if x.service == service],
                                   0.99))
        for service in {x.service for x in logfmt}
    }  # fmt: skip
    assert got.keys() == want.keys() and all(got[k] == pytest.approx(want[k]) for k in want)
    bad = httpx.get(base + "/loki/api/v1/query", params={
        "query": 'avg_over_time({env=~".+"} |= "status=" | logfmt | unwrap msg [30m]) by (env)',
        "time": str(END)})  # fmt: skip
    assert bad.status_code == 400 and "SampleExtractionErr" in bad.text
