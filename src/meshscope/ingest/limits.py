"""Limits every receiver enforces, whatever its transport (HTTP or gRPC)."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class IngestLimits:
    """Bounds on one request, and how receivers answer when they cannot take it now.

    - `max_body_bytes`: the largest body accepted AFTER decompression (OTLP's 20 MiB; 413
      beyond it). gRPC uses it as the max receive message size.
    - `max_compressed_bytes`: the largest body read off the wire before decompression (413
      as soon as the stream passes it, or at once when Content-Length says so).
    - `offload_bytes`: bodies at least this large (decompressed, or estimated from the
      compressed size) are decompressed and decoded in a worker thread, so one big request
      does not stall the event loop; smaller ones are decoded inline, which is cheaper.
    - `unavailable_retry_after_s`: the Retry-After sent with 503 when the store is unavailable
      (an overloaded pipeline says its own delay).
    """

    max_body_bytes: int = 20 * MIB
    max_compressed_bytes: int = 20 * MIB
    offload_bytes: int = 64 * 1024
    unavailable_retry_after_s: int = 5

    def __post_init__(self) -> None:
        if self.max_body_bytes <= 0 or self.max_compressed_bytes <= 0:
            raise ValueError("body limits must be positive")
        if self.offload_bytes < 0 or self.unavailable_retry_after_s < 0:
            raise ValueError("offload_bytes and unavailable_retry_after_s must be >= 0")
