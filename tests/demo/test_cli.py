"""`meshscope demo` as a user runs it: within 30 s the query APIs show the services, error
spans, the graph's edges and span metrics; SIGINT (Ctrl-C) stops every child process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from meshscope.cli import main
from tests.demo.mesh import free_port_range

FIRST_SIGNS_S = 30


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _query(ui: str, promql: str) -> list[dict[str, object]]:
    body = httpx.get(f"{ui}/api/v1/query", params={"query": promql}).json()
    return list(body["data"]["result"])


@pytest.mark.slow
def test_demo_shows_everything_within_30s_and_ctrl_c_stops_all(tmp_path: Path) -> None:
    base = free_port_range(40)
    env = dict(os.environ)
    for offset, name in enumerate(("UI", "OTLP_HTTP", "OTLP_GRPC", "ZIPKIN")):
        env[f"MESHSCOPE_SERVER__{name}_PORT"] = str(base + 35 + offset)
    env["MESHSCOPE_PIPELINE__FLUSH_INTERVAL_SECONDS"] = "2"
    ui = f"http://127.0.0.1:{base + 35}"
    demo = subprocess.Popen(
        [sys.executable, "-m", "meshscope.cli", "demo", "--data", str(tmp_path / "demo.duckdb"),
         "--base-port", str(base), "--rate", "20", "--error-rate", "db=0.3",
         "--logs", str(tmp_path / "services.jsonl")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    started = time.monotonic()
    shown: dict[str, bool] = {}
    try:
        while time.monotonic() - started < FIRST_SIGNS_S and not (shown and all(shown.values())):
            time.sleep(1)
            assert demo.poll() is None, "the demo exited"
            try:
                services = httpx.get(f"{ui}/api/services").json()["data"]
                edges = _query(ui, "traces_service_graph_request_total")
                errors = _query(ui, 'calls_total{status_code="STATUS_CODE_ERROR"}')
                latency = _query(ui, "duration_milliseconds_count")
                slos = httpx.get(f"{ui}/api/meshscope/slos").json()["data"]["slos"]
            except (httpx.TransportError, KeyError, ValueError):
                continue
            shown = {
                "services": set(services) >= {"web", "api", "db", "cache", "worker"},
                "edges": len(edges) == 4,
                "errors": bool(errors),
                "span metrics": bool(latency),
                # The demo's own SLOs, the checkout's burning with db failing 30%.
                "slos": {s["name"] for s in slos} == {"checkout-availability", "api-latency"}
                and any(s["events"]["bad"] > 0 for s in slos),
            }
        assert shown and all(shown.values()), shown
        children = _children(demo.pid)
        assert len(children) == 3  # meshscope serve, sidecars, services
    finally:
        demo.send_signal(signal.SIGINT)
        code = demo.wait(30)
    assert code == 0
    assert not [pid for pid in children if _alive(pid)]
    assert demo.stdout is not None and b"meshscope demo is running" in demo.stdout.read()
    logs = (tmp_path / "services.jsonl").read_text().splitlines()
    assert logs and '"trace_id"' in logs[-1]


def test_bad_options_are_refused_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--error-rate", "nope=0.5"]) == 2
    assert "unknown service 'nope'" in capsys.readouterr().err
    assert main(["demo", "--spike", "api"]) == 2
    assert "SERVICE=NUMBER" in capsys.readouterr().err
    assert main(["sidecar", "--service", "a", "--listen", "x", "--upstream", "http://h"]) == 2
    assert "--listen must be HOST:PORT" in capsys.readouterr().err
    assert main(["sidecar", "--service", "a", "--listen", ":1", "--upstream", "ftp://h"]) == 2
    assert "--upstream must be an http(s) URL" in capsys.readouterr().err
