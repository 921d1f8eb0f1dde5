"""The HTTP receivers in one place, for wiring: OTLP/HTTP (port 4318) and Zipkin (port 9411).

Each factory returns Starlette routes delivering to an `IngestSink`; see `otlp_http` and
`zipkin_http` for what they accept and answer, and `IngestLimits` for the bounds they enforce.
To share metrics' delta-to-cumulative state with the gRPC receiver, pass one `OtlpDecoders`
to both `otlp_http_routes` and `serve_grpc`.
"""

from __future__ import annotations

from meshscope.ingest.limits import IngestLimits
from meshscope.ingest.otlp_http import otlp_http_routes
from meshscope.ingest.receiving import OtlpDecoders
from meshscope.ingest.zipkin_http import zipkin_routes

__all__ = ["IngestLimits", "OtlpDecoders", "otlp_http_routes", "zipkin_routes"]
