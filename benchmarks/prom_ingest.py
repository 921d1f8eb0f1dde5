"""Prometheus ingest throughput: remote write decoding and scrape parsing, samples per second.

Run: .venv/bin/python benchmarks/prom_ingest.py
Prints samples/s for (1) snappy + protobuf decode + mapping of remote write requests as
Prometheus sends them (500 series x 1 sample per request), (2) prometheus_client parsing of
a text exposition alone, and (3) parsing + mapping to points (what one scrape costs), with
the ratio of (3) to (2): the share of the scrape cost that is meshscope's own mapping.
"""

from __future__ import annotations

import time

import cramjam

from meshscope.ingest.exposition import parse_families, to_points
from meshscope.ingest.prompb.remote_pb2 import WriteRequest
from meshscope.ingest.remote_write import RemoteWriteDecoder

SERIES = 500
REQUESTS = 200
TARGET = (("instance", "10.0.0.1:8080"), ("job", "app"))


def remote_write_body(offset: int) -> bytes:
    request = WriteRequest()
    for i in range(SERIES):
        series = request.timeseries.add()
        series.labels.add(name="__name__", value=f"http_requests_{i % 20}_total")
        series.labels.add(name="instance", value="10.0.0.1:8080")
        series.labels.add(name="job", value="app")
        series.labels.add(name="path", value=f"/api/{i}")
        series.samples.add(value=float(i), timestamp=1_700_000_000_000 + offset)
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))


def exposition(lines: int) -> str:
    out = ["# HELP app_requests_total Requests.", "# TYPE app_requests_total counter"]
    out += [f'app_requests_total{{path="/api/{i}",code="200"}} {i}' for i in range(lines // 2)]
    out += ["# TYPE app_latency_seconds histogram"]
    for i in range(lines // 2 // 6):
        for le, count in (("0.1", 1), ("0.5", 2), ("1.0", 3), ("+Inf", 4)):
            out.append(f'app_latency_seconds_bucket{{path="/api/{i}",le="{le}"}} {count}')
        out.append(f'app_latency_seconds_sum{{path="/api/{i}"}} 1.5')
        out.append(f'app_latency_seconds_count{{path="/api/{i}"}} 4')
    return "\n".join(out) + "\n"


def rate(samples: int, seconds: float) -> str:
    return f"{samples / seconds:,.0f} samples/s"


def main() -> None:
    bodies = [remote_write_body(i) for i in range(REQUESTS)]
    decoder = RemoteWriteDecoder()
    started = time.perf_counter()
    stored = sum(len(decoder.decode(b, 1 << 30).batch.metrics) for b in bodies)
    elapsed = time.perf_counter() - started
    print(f"remote write decode+map: {rate(stored, elapsed)} ({REQUESTS} requests x {SERIES})")

    text = exposition(20_000)
    rounds = 5
    started = time.perf_counter()
    for _ in range(rounds):
        families = parse_families(text, "text/plain; version=0.0.4")
    parse_s = (time.perf_counter() - started) / rounds
    count = sum(len(f.samples) for f in families)
    started = time.perf_counter()
    for _ in range(rounds):
        points = to_points(parse_families(text, "text/plain"), TARGET, 1_700_000_000_000_000_000)
    total_s = (time.perf_counter() - started) / rounds
    print(f"scrape parse (prometheus_client): {rate(count, parse_s)} ({count} samples)")
    print(
        f"scrape parse+map: {rate(count, total_s)} -> {len(points.points)} points; "
        f"parse+map / parse = {total_s / parse_s:.2f}"
    )


if __name__ == "__main__":
    main()
