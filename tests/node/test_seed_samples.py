"""The four sample cases of the seed task pages, run through the real `meshscope node` process
and compared as the grader does (reply body equal, ".*" matching anything)."""

from __future__ import annotations

import json

import pytest

from tests.node.conftest import body_matches, run_node_process

PRETTY_MANUAL_INSTRUMENT = """{
  "src": "developer",
  "dest": "code",
  "body": {
    "type": "manual_instrument",
    "msg_id": 1,
    "code": "async function process() { const span = tracer.startSpan('process'); try { await work(); span.end(); } catch(e) { span.recordException(e); throw; } }"
  }
}
"""  # noqa: E501  (verbatim from the seed page)

SEEDS = [
    pytest.param(
        '{"src":"sidecar","dest":"metrics","body":{"type":"record","msg_id":1,"service":"api",'
        '"duration_ms":150,"status":200}}\n',
        ('{"type": "metrics_recorded", "in_reply_to": 1, "service": "api", "request_count": 1}',),
        ("metrics", "sidecar"),
        id="000-collect-service-metrics",
    ),
    pytest.param(
        '{"src":"service-a","dest":"tracer","body":{"type":"trace","msg_id":1,'
        '"operation":"GET /api/users"}}\n',
        ('{"type": "trace_created", "in_reply_to": 1, "trace_id": ".*", "span_id": ".*"}',),
        ("tracer", "service-a"),
        id="000-create-distributed-trace",
    ),
    pytest.param(
        '{"src":"instrumentor","dest":"services","body":{"type":"instrument_service","msg_id":1,'
        '"services":["web","api","db"],"auto":true}}\n'
        '{"src":"user","dest":"web","body":{"type":"http_request","path":"/api/users/123"}}\n',
        (
            '{"type": "trace_complete", "trace_id": ".*", "services": ["web", "api", "db"], '
            '"span_count": 3}',
        ),
        ("web", "user"),
        id="003-instrument-multiple-services",
    ),
    pytest.param(
        PRETTY_MANUAL_INSTRUMENT,
        ('{"type": "instrumentation_ok", "in_reply_to": 1, "spans_created": 1}',),
        ("code", "developer"),
        id="003-manual-instrumentation-pretty-printed",
    ),
    pytest.param(
        json.dumps(json.loads(PRETTY_MANUAL_INSTRUMENT)) + "\n",
        ('{"type": "instrumentation_ok", "in_reply_to": 1, "spans_created": 1}',),
        ("code", "developer"),
        id="003-manual-instrumentation-one-line",
    ),
]


@pytest.mark.parametrize(("stdin", "expected", "route"), SEEDS)
def test_seed_sample(stdin: str, expected: tuple[str, ...], route: tuple[str, str]) -> None:
    lines, stderr = run_node_process(stdin)
    assert len(lines) == len(expected), (lines, stderr)
    for line, want in zip(lines, expected, strict=True):
        reply = json.loads(line)
        assert list(reply) == ["src", "dest", "body"]
        assert (reply["src"], reply["dest"]) == route
        assert body_matches(json.loads(want), reply["body"]), (want, reply["body"])
        # Byte-for-byte where the expectation has no wildcard: same keys, order and spacing.
        if ".*" not in want:
            assert json.dumps(reply["body"]) == want
    assert stderr == ""
