"""What the transports share: offloading decisions and thread-safe OTLP decoding."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

from meshscope.ingest.limits import IngestLimits
from meshscope.ingest.otlp import Decoded
from meshscope.ingest.receiving import OtlpDecoders, export_message, run_decoder
from tests.ingest.otel_sdk import make_metrics


def _decode_thread(size: int, limits: IngestLimits) -> tuple[int, int]:
    async def main() -> tuple[int, int]:
        worker = await run_decoder(threading.get_ident, size, limits)
        return threading.get_ident(), worker

    return asyncio.run(main())


def test_small_bodies_are_decoded_inline_large_ones_in_a_thread() -> None:
    limits = IngestLimits(offload_bytes=1000)
    loop_thread, worker = _decode_thread(999, limits)
    assert worker == loop_thread
    loop_thread, worker = _decode_thread(1000, limits)
    assert worker != loop_thread


def _requests_total(decoded: Decoded) -> float:
    return sum(
        p.value
        for p in decoded.batch.metrics
        if p.name == "http_server_requests_total" and p.label("http_response_status_code") == "200"
    )


def test_delta_sums_accumulate_across_concurrent_decodes() -> None:
    decoders = OtlpDecoders()  # owns a DeltaToCumulative by default
    body = make_metrics(delta=True)
    with ThreadPoolExecutor(8) as pool:
        results = list(
            pool.map(lambda _: decoders.decode_body("metrics", body, json=False), range(40))
        )
    assert all(result.rejected == 0 for result in results)
    # Each request adds 3; the totals seen are exactly 3, 6, ..., 120 in some order.
    assert sorted(_requests_total(result) for result in results) == [3.0 * n for n in range(1, 41)]


def test_export_messages() -> None:
    assert export_message("traces", Decoded()).SerializeToString() == b""
    message = export_message("logs", Decoded(rejected=2, error_message="bad ids"))
    response = ExportLogsServiceResponse.FromString(message.SerializeToString())
    assert response.partial_success.rejected_log_records == 2
    assert response.partial_success.error_message == "bad ids"
