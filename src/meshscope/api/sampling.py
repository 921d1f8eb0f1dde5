"""Jaeger remote sampling: SDKs fetch their head-sampling strategy from here, per service.

`GET /api/sampling?service=NAME` (the Jaeger collector's path) and `GET /sampling?service=NAME`
(the path of Jaeger v2's remote_sampling extension and the OTel collector's
jaegerremotesampling extension) answer with Jaeger's `SamplingStrategyResponse` in its JSON
form (`api_v2/sampling.proto`, enum names as strings), built from the configured strategies
the way Jaeger's file-based strategy store builds it:

    {"strategyType": "PROBABILISTIC", "probabilisticSampling": {"samplingRate": 0.5}}
    {"strategyType": "RATE_LIMITING", "rateLimitingSampling": {"maxTracesPerSecond": 20}}
    ... + "operationSampling": {"defaultSamplingProbability", "defaultLowerBoundTracesPerSecond",
                                "perOperationStrategies": [{"operation", "probabilisticSampling"}]}
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from meshscope.pipeline.sampling.config import PROBABILISTIC, RemoteSamplingConfig, Strategy

# Jaeger's defaultSamplingProbability for per-operation strategies of a rate-limited service
JAEGER_DEFAULT_SAMPLING_PROBABILITY = 0.001


def strategy_response(strategy: Strategy, lower_bound_per_second: float = 0.0) -> dict[str, Any]:
    """The JSON body for one strategy (Jaeger's `SamplingStrategyResponse`)."""
    body: dict[str, Any]
    if strategy.type == PROBABILISTIC:
        body = {
            "strategyType": "PROBABILISTIC",
            "probabilisticSampling": {"samplingRate": strategy.param},
        }
        default_probability = strategy.param
    else:
        body = {
            "strategyType": "RATE_LIMITING",
            "rateLimitingSampling": {"maxTracesPerSecond": int(strategy.param)},
        }
        default_probability = JAEGER_DEFAULT_SAMPLING_PROBABILITY
    if strategy.operation_strategies:
        body["operationSampling"] = {
            "defaultSamplingProbability": default_probability,
            "defaultLowerBoundTracesPerSecond": lower_bound_per_second,
            "perOperationStrategies": [
                {"operation": op.operation, "probabilisticSampling": {"samplingRate": op.param}}
                for op in strategy.operation_strategies
            ],
        }
    return body


def sampling_routes(config: RemoteSamplingConfig) -> list[Route]:
    async def sampling(request: Request) -> Response:
        services = request.query_params.getlist("service")
        if len(services) != 1 or not services[0]:
            return PlainTextResponse("'service' parameter must be provided once", status_code=400)
        strategy = config.strategy_for(services[0])
        body = strategy_response(strategy, config.default_lower_bound_traces_per_second)
        return JSONResponse(body)

    return [
        Route("/api/sampling", sampling, methods=["GET"]),
        Route("/sampling", sampling, methods=["GET"]),
    ]
