"""Added latency of the sidecar, against calling the service directly, at a fixed rate.

Three processes: an upstream (a small aiohttp app, plus an OTLP sink answering 200 so the
sidecar really encodes and exports), `meshscope sidecar` in front of it, and this load
generator (open loop: requests are sent on schedule, not when the previous one returns).
Phase 1 calls the upstream directly, phase 2 through the sidecar, at the same rate (the
generator is `http_load.py`: open loop, pre-encoded requests, ~1/3 of an aiohttp client's
CPU per request, so it takes less of the 2 cores from what it measures); printed:
latency percentiles of both, the difference (the sidecar's added latency), and the sidecar
process's CPU time per 1,000 requests (from /proc).

    .venv/bin/python benchmarks/sidecar.py [--rate 500] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))

import http_load

TARGETS = {"p50": 1.0, "p99": 5.0}  # ms of added latency


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_upstream(port: int, sink_port: int) -> None:
    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "item": request.match_info["item"]})

    async def sink(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=b"", content_type="application/x-protobuf")

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/items/{item}", hello)
        otlp = web.Application()
        otlp.router.add_post("/v1/traces", sink)
        otlp.router.add_post("/v1/logs", sink)
        for application, bind in ((app, port), (otlp, sink_port)):
            runner = web.AppRunner(application, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", bind).start()
        await asyncio.Event().wait()

    import uvloop

    uvloop.run(main())


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _phase(url: str, rate: float, seconds: float) -> tuple[list[float], int]:
    """Latencies (ms) of requests sent at `rate`/s for `seconds`; and the failures."""
    import uvloop

    address = url.removeprefix("http://")
    host, _, port = address.partition(":")
    paths = [f"/items/{i}" for i in range(100)]
    cpu = time.process_time()
    result = uvloop.run(http_load.run(host, int(port), paths, rate, seconds))
    cpu = time.process_time() - cpu
    print(f"load generator CPU: {cpu * 1e6 / max(1, len(result.latencies_ms)):.0f} us per request")
    return result.latencies_ms, result.failures


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _wait(url: str) -> None:
    import urllib.request

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--serve-upstream", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_upstream:
        serve_upstream(*args.serve_upstream)
        return
    up, sink, proxy, admin = (_free_port() for _ in range(4))
    upstream = subprocess.Popen([sys.executable, __file__, "--serve-upstream", str(up), str(sink)])
    sidecar = subprocess.Popen(
        [sys.executable, "-m", "meshscope.cli", "sidecar", "--service", "bench",
         "--listen", f"127.0.0.1:{proxy}", "--upstream", f"http://127.0.0.1:{up}",
         "--admin", f"127.0.0.1:{admin}", "--otlp-endpoint", f"http://127.0.0.1:{sink}"],
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait(f"http://127.0.0.1:{up}/items/0")
        _wait(f"http://127.0.0.1:{admin}/health")
        direct, direct_failed = _phase(f"http://127.0.0.1:{up}", args.rate, args.seconds)
        cpu_before = _cpu_seconds(sidecar.pid)
        proxied, proxied_failed = _phase(f"http://127.0.0.1:{proxy}", args.rate, args.seconds)
        cpu = _cpu_seconds(sidecar.pid) - cpu_before
        time.sleep(1.0)
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics") as response:
            metrics = response.read().decode()
    finally:
        for proc in (sidecar, upstream):
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
    exported = [
        line for line in metrics.splitlines() if line.startswith("meshscope_sidecar_exported")
    ]
    total = f"{len(direct)} + {len(proxied)} requests"
    print(f"rate {args.rate:g} req/s for {args.seconds:g} s per phase; {total}")
    print(f"{'':>10} {'p50':>8} {'p90':>8} {'p99':>8} {'max':>8}  (ms)")
    rows = {"direct": direct, "sidecar": proxied}
    for name, values in rows.items():
        cells = [_pct(values, q) for q in (0.5, 0.9, 0.99)] + [max(values)]
        print(f"{name:>10} " + " ".join(f"{c:8.3f}" for c in cells))
    for label, q in (("p50", 0.5), ("p99", 0.99)):
        added = _pct(proxied, q) - _pct(direct, q)
        verdict = "meets" if added <= TARGETS[label] else "MISSES"
        print(f"added {label}: {added:.3f} ms ({verdict} the {TARGETS[label]:g} ms target)")
    print(f"sidecar CPU: {cpu * 1000 / max(1, len(proxied)) * 1000:.1f} ms per 1,000 requests "
          f"({cpu / args.seconds * 100:.0f}% of a core at {args.rate:g} req/s)")  # fmt: skip
    print(f"failures: direct {direct_failed}, sidecar {proxied_failed}; {'; '.join(exported)}")


if __name__ == "__main__":
    main()
