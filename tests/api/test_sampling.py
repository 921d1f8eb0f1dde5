"""Jaeger remote sampling over a real HTTP server: shapes field by field, 400 on bad input."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from starlette.applications import Starlette

from meshscope.api.sampling import sampling_routes, strategy_response
from meshscope.api.sampling_metrics import SamplingCollector
from meshscope.pipeline.sampling.config import from_mapping
from meshscope.pipeline.sampling.facts import SpanMatcher
from meshscope.pipeline.sampling.head import HeadSamplingFilter
from meshscope.pipeline.sampling.policies import AlwaysSample, StatusCodePolicy
from meshscope.pipeline.sampling.policy_config import StatusCodeMatch
from meshscope.pipeline.sampling.tail import TailSampler
from tests.pipeline.sampling.traces import make_trace, offer

REMOTE = {
    "default_strategy": {"type": "probabilistic", "param": 0.25},
    "default_lower_bound_traces_per_second": 0.5,
    "service_strategies": [
        {"service": "checkout", "type": "ratelimiting", "param": 20},
        {
            "service": "frontend",
            "type": "probabilistic",
            "param": 0.5,
            "operation_strategies": [
                {"operation": "GET /health", "type": "probabilistic", "param": 0.0},
                {"operation": "POST /pay", "param": 1},
            ],
        },
        {
            "service": "queue",
            "type": "ratelimiting",
            "param": 3,
            "operation_strategies": [{"operation": "poll", "param": 0.1}],
        },
    ],
}


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    config = from_mapping({"remote": REMOTE})
    app = Starlette(routes=sampling_routes(config.remote))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        assert not thread.is_alive()


@pytest.mark.parametrize("path", ["/api/sampling", "/sampling"])
def test_probabilistic_default_for_unknown_services(base_url: str, path: str) -> None:
    response = httpx.get(f"{base_url}{path}", params={"service": "unknown"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {
        "strategyType": "PROBABILISTIC",
        "probabilisticSampling": {"samplingRate": 0.25},
    }


def test_rate_limiting(base_url: str) -> None:
    body = httpx.get(f"{base_url}/api/sampling", params={"service": "checkout"}).json()
    assert body == {
        "strategyType": "RATE_LIMITING",
        "rateLimitingSampling": {"maxTracesPerSecond": 20},
    }
    assert isinstance(body["rateLimitingSampling"]["maxTracesPerSecond"], int)  # int32 in proto


def test_per_operation_strategies(base_url: str) -> None:
    body = httpx.get(f"{base_url}/sampling", params={"service": "frontend"}).json()
    assert body["strategyType"] == "PROBABILISTIC"
    assert body["probabilisticSampling"] == {"samplingRate": 0.5}
    operations = body["operationSampling"]
    assert operations["defaultSamplingProbability"] == 0.5
    assert operations["defaultLowerBoundTracesPerSecond"] == 0.5
    assert operations["perOperationStrategies"] == [
        {"operation": "GET /health", "probabilisticSampling": {"samplingRate": 0.0}},
        {"operation": "POST /pay", "probabilisticSampling": {"samplingRate": 1.0}},
    ]


def test_rate_limited_service_with_operations_uses_jaegers_default_probability(
    base_url: str,
) -> None:
    body = httpx.get(f"{base_url}/sampling", params={"service": "queue"}).json()
    assert body["strategyType"] == "RATE_LIMITING"
    assert body["rateLimitingSampling"] == {"maxTracesPerSecond": 3}
    assert body["operationSampling"]["defaultSamplingProbability"] == 0.001
    assert body["operationSampling"]["perOperationStrategies"][0]["operation"] == "poll"


@pytest.mark.parametrize(
    "query",
    ["", "?service=", "?service=a&service=b", "?other=1"],
    ids=["none", "empty", "twice", "other"],
)
def test_missing_service_is_a_400_with_a_message(base_url: str, query: str) -> None:
    response = httpx.get(f"{base_url}/api/sampling{query}")
    assert response.status_code == 400
    assert "'service' parameter must be provided" in response.text


def test_post_is_refused(base_url: str) -> None:
    assert httpx.post(f"{base_url}/api/sampling?service=a").status_code == 405


def test_default_config_samples_everything() -> None:
    config = from_mapping({})
    assert strategy_response(config.remote.strategy_for("x")) == {
        "strategyType": "PROBABILISTIC",
        "probabilisticSampling": {"samplingRate": 1.0},
    }


def test_collector_exposes_the_samplers_counts() -> None:
    rng = random.Random(1)
    matcher = SpanMatcher()
    sampler = TailSampler(
        [("errors", StatusCodePolicy(StatusCodeMatch(), matcher)), ("all", AlwaysSample())],
        matcher,
        decision_wait_ns=10,
        num_traces=1,
    )
    error, ok = make_trace(rng, error=True, n_spans=2), make_trace(rng, n_spans=3)
    offer(sampler, error.spans + ok.spans, 0)  # num_traces=1: the first is evicted, decided
    head = HeadSamplingFilter(0.0)
    head.filter(ok.spans)
    registry = CollectorRegistry()
    registry.register(SamplingCollector(lambda: [(sampler, head)]))
    text = generate_latest(registry).decode()
    lines = set(text.splitlines())
    assert 'meshscope_tail_sampling_traces_total{decision="sampled"} 1.0' in lines
    assert "meshscope_tail_sampling_evicted_traces_total 1.0" in lines
    assert 'meshscope_tail_sampling_spans_total{decision="sampled"} 2.0' in lines
    assert "meshscope_tail_sampling_buffered_traces 1.0" in lines
    assert "meshscope_tail_sampling_buffered_spans 3.0" in lines
    assert (
        'meshscope_tail_sampling_policy_decisions_total{decision="sampled",policy="errors"} 1.0'
        in lines
    )
    assert 'meshscope_head_sampling_spans_total{decision="not_sampled"} 3.0' in lines
    sampler.drain()
    text = generate_latest(registry).decode()
    assert 'meshscope_tail_sampling_traces_total{decision="sampled"} 2.0' in text
