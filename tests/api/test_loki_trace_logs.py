"""Trace -> logs through the Loki API, as Grafana's Tempo/Jaeger data sources ask for them.

A real app (memory store and a DuckDB file) served on 127.0.0.1 receives spans and logs from
the real OpenTelemetry SDK over OTLP/HTTP; the log bodies do not contain the ids, as with
most OTel logging bridges. The Loki queries are the ones Grafana generates for trace-to-logs
(legacy default, the dynamic variants, and a plain label filter), sent with Grafana's
parameters and its `X-Loki-Response-Encoding-Flags: categorize-labels` header.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from meshscope.app import build
from meshscope.config import Config, DuckDBConfig, PipelineConfig, StorageConfig
from tests.serving import serving

GRAFANA = {"X-Loki-Response-Encoding-Flags": "categorize-labels", "X-Grafana-Org-Id": "1"}
RESOURCE = {"service.name": "checkout", "service.namespace": "shop", "host.name": "node-1"}
MS = 10**6


@dataclass(frozen=True)
class Shop:
    url: str
    trace_id: str
    root_span: str
    child_span: str
    start_ns: int  # the root span's
    end_ns: int


def _sdk_traffic(otlp: str) -> tuple[str, str, str, int, int]:
    """One traced request logging in both its spans, then noise: another trace's logs, an
    untraced line, and a line that mentions the first trace id in its text."""
    spans = InMemorySpanExporter()
    tracing = TracerProvider(resource=Resource(RESOURCE))
    tracing.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{otlp}/v1/traces")))
    tracing.add_span_processor(SimpleSpanProcessor(spans))
    logging = LoggerProvider(resource=Resource(RESOURCE))
    logging.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{otlp}/v1/logs"))
    )
    tracer, logger = tracing.get_tracer("shop"), logging.get_logger("shop.handlers")
    with tracer.start_as_current_span("POST /checkout") as root:
        logger.emit(
            body="checkout started",
            severity_text="INFO",
            severity_number=SeverityNumber.INFO,
            attributes={"order.id": 7},
        )
        with tracer.start_as_current_span("charge card") as child:
            logger.emit(
                body="card declined",
                severity_text="ERROR",
                severity_number=SeverityNumber.ERROR,
                attributes={"order.id": 7},
            )
        time.sleep(0.003)  # the logs lie inside the span even with Grafana's ms rounding
    trace_id = f"{root.get_span_context().trace_id:032x}"
    with tracer.start_as_current_span("POST /checkout"):
        logger.emit(
            body="checkout started",
            severity_text="INFO",
            severity_number=SeverityNumber.INFO,
            attributes={"order.id": 8},
        )
    logger.emit(
        body=f"retrying after {trace_id} failed",
        severity_text="WARN",
        severity_number=SeverityNumber.WARN,
    )
    logger.emit(body="cache warmed", severity_text="DEBUG", severity_number=SeverityNumber.DEBUG)
    tracing.shutdown()
    logging.shutdown()
    root_trace = root.get_span_context().trace_id
    (finished,) = [
        s for s in spans.get_finished_spans() if s.context.trace_id == root_trace and not s.parent
    ]
    assert finished.start_time is not None and finished.end_time is not None
    return (
        trace_id, f"{root.get_span_context().span_id:016x}",
        f"{child.get_span_context().span_id:016x}", finished.start_time, finished.end_time,
    )  # fmt: skip


@pytest.fixture(scope="module", params=["memory", "duckdb"])
def shop(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Shop]:
    path = Path(tmp_path_factory.mktemp("t2l")) / "store.duckdb"
    config = Config(
        storage=StorageConfig(
            kind=request.param, path=str(path), duckdb=DuckDBConfig(warm_up=False)
        ),
        pipeline=PipelineConfig(ingest_workers=0),
    )
    app = build(config)
    app.start()
    try:
        with serving(app.otlp_http) as otlp, serving(app.ui) as url:
            ids = _sdk_traffic(otlp)
            yield Shop(url, *ids)
    finally:
        app.stop()


def _grafana_range(
    shop: Shop, query: str, headers: dict[str, str] | None = None,
    window: dict[str, str] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """query_range as Grafana's Loki data source sends it, over the span's time as Grafana's
    trace-to-logs link sets it (span start to span end, in whole ms)."""
    start_ms, end_ms = shop.start_ns // MS, shop.end_ns // MS
    params = {
        "direction": "backward", "limit": "1000", "query": query, "step": "1ms",
        "start": str(start_ms * MS), "end": str(max(end_ms, start_ms + 1) * MS),
    } | (window or {})  # fmt: skip
    response = httpx.get(
        f"{shop.url}/loki/api/v1/query_range", params=params,
        headers=GRAFANA if headers is None else headers,
    )  # fmt: skip
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def _lines(data: dict[str, Any]) -> list[str]:
    return [value[1] for stream in data["result"] for value in stream["values"]]


def _legacy_default(trace_id: str, span_id: str = "") -> str:
    """Grafana's default trace-to-logs query for Loki (tags: service.name -> service_name)."""
    expr = (
        '{service_name="checkout"} | label_format log_line_contains_trace_id=`{{ contains "'
        f'{trace_id}" __line__  }}}}` | log_line_contains_trace_id="true" or trace_id="{trace_id}"'
    )
    if span_id:
        expr += (
            ' | label_format log_line_contains_span_id=`{{ contains "'
            f'{span_id}" __line__  }}}}` | log_line_contains_span_id="true" or span_id="{span_id}"'
        )
    return expr


def test_grafana_default_trace_to_logs_query_finds_the_trace_logs(shop: Shop) -> None:
    data = _grafana_range(shop, _legacy_default(shop.trace_id))
    assert _lines(data) == ["card declined", "checkout started"]  # newest first
    span_only = _grafana_range(shop, _legacy_default(shop.trace_id, shop.child_span))
    assert _lines(span_only) == ["card declined"]
    # Grafana 10.x sent `OR`: LogQL keywords are case-insensitive
    upper = _grafana_range(shop, _legacy_default(shop.trace_id).replace(" or ", " OR "))
    assert _lines(upper) == ["card declined", "checkout started"]


BOTH, CHILD = ["card declined", "checkout started"], ["card declined"]


@pytest.mark.parametrize(
    ("pipeline", "expected"),
    [
        ('| trace_id="{t}"', BOTH),
        ('| logfmt | json | drop __error__ | trace_id="{t}"', BOTH),  # Grafana's dynamic t2l
        ('| trace_id="{t}" | span_id="{s}"', CHILD),
        ('| logfmt | json | drop __error__ | trace_id="{t}" | span_id="{s}"', CHILD),
        ('| trace_id=~"{t}|0+" and level="error"', CHILD),
        ('| span_id!="{s}" and trace_id="{t}"', ["checkout started"]),
    ],
)
def test_label_filters_on_trace_and_span_ids(
    shop: Shop, pipeline: str, expected: list[str]
) -> None:
    query = '{service_name="checkout"} ' + pipeline.format(t=shop.trace_id, s=shop.child_span)
    assert _lines(_grafana_range(shop, query)) == expected


def test_trace_id_filter_is_answered_from_the_id_columns(shop: Shop) -> None:
    wide = {"start": str(shop.start_ns - 60 * 10**9), "end": str(shop.end_ns + 60 * 10**9)}
    data = _grafana_range(
        shop, f'{{service_name="checkout"}} | trace_id="{shop.trace_id}"', window=wide
    )
    assert _lines(data) == ["card declined", "checkout started"]
    # pushed down: the store read only the trace's records, not the other four
    assert data["stats"]["summary"]["totalLinesProcessed"] == 2
    everything = _grafana_range(shop, '{service_name="checkout"}', window=wide)
    assert everything["stats"]["summary"]["totalLinesProcessed"] == 5


def test_line_filter_matches_the_line_only_as_in_loki(shop: Shop) -> None:
    wide = {"start": str(shop.start_ns - 60 * 10**9), "end": str(shop.end_ns + 60 * 10**9)}
    data = _grafana_range(shop, f'{{service_name="checkout"}} |= "{shop.trace_id}"', window=wide)
    assert _lines(data) == [f"retrying after {shop.trace_id} failed"]


def test_categorized_response_carries_structured_metadata(shop: Shop) -> None:
    data = _grafana_range(shop, _legacy_default(shop.trace_id))
    assert data["encodingFlags"] == ["categorize-labels"]
    (stream,) = data["result"]
    assert stream["stream"] == {
        "service_name": "checkout", "service_namespace": "shop", "host_name": "node-1",
    }  # fmt: skip
    values = stream["values"]
    assert [len(v) for v in values] == [3, 3]
    assert all(isinstance(v[0], str) and int(v[0]) > 0 for v in values)
    declined = values[0][2]
    assert declined["structuredMetadata"] == {
        "trace_id": shop.trace_id, "span_id": shop.child_span, "order_id": "7",
        "detected_level": "error", "level": "error",
    }  # fmt: skip
    assert declined["parsed"] == {"log_line_contains_trace_id": "false"}
    started = values[1][2]
    assert started["structuredMetadata"]["span_id"] == shop.root_span
    plain = _grafana_range(shop, f'{{service_name="checkout"}} | trace_id="{shop.trace_id}"')
    metadata_only = {"structuredMetadata": declined["structuredMetadata"]}
    assert plain["result"][0]["values"][0][2] == metadata_only  # nothing parsed


def test_without_the_flag_metadata_is_merged_into_the_stream(shop: Shop) -> None:
    data = _grafana_range(shop, f'{{service_name="checkout"}} | trace_id="{shop.trace_id}"', {})
    assert "encodingFlags" not in data
    streams = {s["values"][0][1]: s for s in data["result"]}
    assert set(streams) == {"card declined", "checkout started"}  # split by span_id
    for line, span in (("card declined", shop.child_span), ("checkout started", shop.root_span)):
        assert len(streams[line]["values"]) == 1 and len(streams[line]["values"][0]) == 2
        assert streams[line]["stream"]["trace_id"] == shop.trace_id
        assert streams[line]["stream"]["span_id"] == span
        assert streams[line]["stream"]["service_namespace"] == "shop"


def test_labels_list_stream_labels_only_as_loki_does(shop: Shop) -> None:
    window = {"start": str(shop.start_ns - 60 * 10**9), "end": str(shop.end_ns + 60 * 10**9)}
    labels = httpx.get(f"{shop.url}/loki/api/v1/labels", params=window, headers=GRAFANA).json()
    assert labels["data"] == ["host_name", "service_name", "service_namespace"]
    values = httpx.get(f"{shop.url}/loki/api/v1/label/trace_id/values", params=window).json()
    assert values["data"] == []


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ('{a="b"} | ' + "(" * 5000 + 'trace_id="x"' + ")" * 5000, "deeper than"),
        ('{a="b"} | ' + " or ".join(['trace_id="x"'] * 5000), "at most"),
        ('{a="b"} | label_format x=5', "expected a quoted template"),
        ('{a="b"} | label_format x=`{{ .y | upper }}`', "unsupported template action"),
        ('{a="b"} | label_format x=`{{ contains "a" }}`', "takes 2 argument"),
        ('{a="b"} | label_format x=`{{ if .y }}z{{ end }}`', "unsupported template action"),
        ('{a="b"} | label_format x=`{{ .y `', "unbalanced"),
        ('{a="b"} | label_format x="{{ printf \\"%s\\" .y }}"', "unsupported template action"),
        ('{a="b"} | trace_id=~"("', "invalid regular expression"),
        ('{a="b"} | trace_id > "x"', "needs a number"),
    ],
)
def test_hostile_filters_get_a_400(shop: Shop, query: str, needle: str) -> None:
    # POSTed as a form (Loki and meshscope take both): the huge ones exceed a URL's length
    response = httpx.post(
        f"{shop.url}/loki/api/v1/query_range", data={"query": query}, headers=GRAFANA
    )
    assert response.status_code == 400, response.text
    assert needle in response.text
