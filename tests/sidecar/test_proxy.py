"""The sidecar as an HTTP proxy: real upstream, real sidecar, real client, all on 127.0.0.1.
Telemetry goes to an endpoint nobody listens on (these tests are about the traffic)."""

from __future__ import annotations

import gzip
import os
import re
from collections.abc import Iterator

import httpx
import pytest

from meshscope.sidecar.runner import RunningSidecars
from meshscope.sidecar.settings import ExportSettings
from tests.ingest.asgi_server import free_port
from tests.sidecar.harness import LoopThread, running_sidecars, running_upstream, sidecar

NOWHERE = ExportSettings(endpoint=f"http://127.0.0.1:{free_port()}", flush_interval_s=0.05)


@pytest.fixture(scope="module")
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.fixture(scope="module")
def proxied(loop: LoopThread) -> Iterator[tuple[str, RunningSidecars]]:
    with (
        running_upstream(loop) as upstream,
        running_sidecars(loop, [sidecar("shop", upstream, timeout_s=0.5)], NOWHERE) as running,
    ):
        yield f"http://127.0.0.1:{running.ports['shop/inbound']}", running


def test_forwards_method_path_query_headers_and_body(proxied: tuple[str, RunningSidecars]) -> None:
    base, _ = proxied
    response = httpx.post(
        f"{base}/echo/a/b?x=1&y=%20",
        content=b"payload",
        headers={"X-Custom": "yes", "Connection": "keep-alive, X-Hop", "X-Hop": "drop me"},
    )
    assert response.status_code == 200
    seen = response.json()
    assert (seen["method"], seen["raw_path"]) == ("POST", "/echo/a/b?x=1&y=%20")
    assert seen["headers"]["x-custom"] == "yes"
    assert "x-hop" not in seen["headers"]  # named by Connection: hop-by-hop
    assert seen["body_length"] == 7
    assert seen["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert seen["headers"]["traceparent"].startswith("00-")


def test_large_bodies_stream_both_ways(proxied: tuple[str, RunningSidecars]) -> None:
    base, _ = proxied
    body = os.urandom(3 * 1024 * 1024)

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(body), 256 * 1024):
            yield body[i : i + 256 * 1024]

    response = httpx.put(f"{base}/echo", content=chunks())  # chunked request body
    assert response.json()["body_length"] == len(body)
    streamed = httpx.get(f"{base}/stream?chunks=30")
    assert streamed.status_code == 200
    assert streamed.content == b"".join(f"chunk-{i};".encode() * 10_000 for i in range(30))


def test_encoded_bodies_pass_through_unchanged(proxied: tuple[str, RunningSidecars]) -> None:
    base, _ = proxied
    with httpx.Client() as client:
        response = client.get(f"{base}/gzip", headers={"Accept-Encoding": "gzip"})
        assert response.headers["content-encoding"] == "gzip"
        assert response.content == b"hello gzip\n"  # httpx decoded the original gzip bytes
        raw = client.send(client.build_request("GET", f"{base}/gzip"), stream=True)
        assert gzip.decompress(b"".join(raw.iter_raw())) == b"hello gzip\n"
        raw.close()


def test_upstream_status_is_returned(proxied: tuple[str, RunningSidecars]) -> None:
    base, _ = proxied
    assert httpx.get(f"{base}/status/503").status_code == 503
    assert httpx.get(f"{base}/status/404").status_code == 404


def test_upstream_timeout_gives_504(proxied: tuple[str, RunningSidecars]) -> None:
    base, _ = proxied
    response = httpx.get(f"{base}/slow?s=2", timeout=10)
    assert response.status_code == 504
    assert "timeout" in response.text


def test_unreachable_upstream_gives_502(loop: LoopThread) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with running_sidecars(loop, [sidecar("lonely", dead)], NOWHERE, admin=False) as running:
        response = httpx.get(f"http://127.0.0.1:{running.ports['lonely/inbound']}/x")
    assert response.status_code == 502
    assert "connection error" in response.text


def test_upstream_breaking_mid_body_truncates_the_response(
    proxied: tuple[str, RunningSidecars],
) -> None:
    base, _ = proxied
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{base}/broken").read()


def test_keep_alive_on_both_sides(proxied: tuple[str, RunningSidecars]) -> None:
    base, _ = proxied
    with httpx.Client() as client:
        echoes = [client.get(f"{base}/echo").json() for _ in range(5)]
        # One client connection to the sidecar for all five requests:
        assert len(client._transport._pool.connections) == 1  # type: ignore[attr-defined]
    # ...and one sidecar connection to the upstream: every request came from the same port.
    assert len({echo["peer_port"] for echo in echoes}) == 1
    assert {echo["headers"]["x-forwarded-for"] for echo in echoes} == {"127.0.0.1"}


def test_admin_metrics_count_requests(proxied: tuple[str, RunningSidecars]) -> None:
    base, running = proxied
    httpx.get(f"{base}/status/500")
    text = httpx.get(f"http://127.0.0.1:{running.ports['admin']}/metrics").text
    assert (
        'meshscope_sidecar_requests_total{destination_service="shop",direction="inbound",'
        'response_code="500",source_service="unknown"}'
    ) in text
    # A sample of the counter, not just its HELP/TYPE lines (which are always there).
    assert re.search(r"^meshscope_sidecar_export_failures_total\{[^}]*\} \d", text, re.M)
