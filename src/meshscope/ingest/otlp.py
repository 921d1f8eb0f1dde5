"""OTLP entry point for transports: pick the decoder from the signal and content type.

The decoders themselves live in `otlp_traces`, `otlp_logs` and `otlp_metrics`; all return a
`Decoded` (batch + OTLP partial-success counts) and raise only `DecodeError`.
"""

from __future__ import annotations

from typing import Literal

from meshscope.ingest.delta import DeltaToCumulative
from meshscope.ingest.errors import DecodeError
from meshscope.ingest.otlp_common import Decoded
from meshscope.ingest.otlp_logs import decode_logs_json, decode_logs_protobuf
from meshscope.ingest.otlp_metrics import decode_metrics_json, decode_metrics_protobuf
from meshscope.ingest.otlp_traces import decode_traces_json, decode_traces_protobuf

Signal = Literal["traces", "logs", "metrics"]

__all__ = [
    "DecodeError",
    "Decoded",
    "DeltaToCumulative",
    "Signal",
    "decode_otlp",
]


def decode_otlp(
    signal: Signal, body: bytes, *, json: bool = False, delta: DeltaToCumulative | None = None
) -> Decoded:
    """Decode an OTLP export request of `signal`, protobuf unless `json`.

    `delta` is only used for metrics (see `DeltaToCumulative`). Raises DecodeError when the
    body is not a request of that signal.
    """
    if signal == "traces":
        return decode_traces_json(body) if json else decode_traces_protobuf(body)
    if signal == "logs":
        return decode_logs_json(body) if json else decode_logs_protobuf(body)
    if signal == "metrics":
        if json:
            return decode_metrics_json(body, delta)
        return decode_metrics_protobuf(body, delta)
    raise DecodeError(f"unknown OTLP signal {signal!r}")
