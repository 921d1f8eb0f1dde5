"""`meshscope demo`: meshscope itself plus the example mesh, as three child processes.

    meshscope serve          (skipped with --otlp-endpoint: use a meshscope already running)
    python -m meshscope.demo.child sidecars   one sidecar per service, one event loop
    python -m meshscope.demo.child services   the services, the traffic generator, the control

Ctrl-C (or SIGTERM) stops them in order: traffic and services first, then the sidecars
(which flush what they buffered), then meshscope (which commits and closes its store).
A child that dies on its own stops the demo too, with its exit code reported.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import IO

from meshscope.config import Config
from meshscope.demo.topology import SERVICES, DemoSettings
from meshscope.listen import describe, holder

STOP_TIMEOUT_S = 15.0
PR_SET_PDEATHSIG = 1


@dataclass(slots=True)
class Child:
    name: str
    process: subprocess.Popen[bytes]


def _die_with_parent() -> None:
    """In the child before exec (Linux): SIGTERM when the demo process dies, however it dies,
    so no child outlives it even though each runs in its own session."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _spawn(name: str, argv: list[str], env: dict[str, str], stdout: IO[bytes] | None) -> Child:
    # Own session: a terminal's Ctrl-C reaches only the demo process, which then stops the
    # children in order (senders before receivers), instead of all of them at once.
    process = subprocess.Popen(
        [sys.executable, *argv],
        env=env,
        stdout=stdout,
        start_new_session=True,
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
    )
    return Child(name, process)


HEADERS_VARIABLE = "OTEL_EXPORTER_OTLP_HEADERS"


def wait_http(url: str, timeout_s: float, child: Child | None = None) -> bool:
    """True once `url` answers 200. An https URL is the demo's own server (server.tls) asked
    whether it is up: its certificate is not checked (no credentials or data are sent)."""
    context = None
    if url.startswith("https:"):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child is not None and child.process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=1, context=context) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    return False


def stop_children(children: list[Child]) -> None:
    """SIGTERM each (in the order given), wait for it, SIGKILL what does not stop in time."""
    for child in children:
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
        try:
            child.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            print(f"meshscope demo: {child.name} did not stop, killing it", file=sys.stderr)
            child.process.kill()
            child.process.wait()


def _scheme(config: Config) -> str:
    return "https" if config.server.tls.cert_file else "http"


def _banner(settings: DemoSettings, config: Config | None, logs: str) -> str:
    if config is not None:
        ui = f"{_scheme(config)}://{config.server.host}:{config.server.ui_port}"
        meshscope = f"  meshscope UI and APIs   {ui}   (e.g. {ui}/api/services)"
    else:  # a meshscope started elsewhere: its UI's address is not known here
        meshscope = f"  telemetry sent to       {settings.otlp_endpoint}   (OTLP/HTTP)"
    lines = [
        "meshscope demo is running (Ctrl-C stops everything)",
        meshscope,
        f"  mesh entry (web)        {settings.entry_url}/checkout",
        f"  fault switch            {settings.url(settings.control_port)}/faults",
        f"  traffic                 {settings.url(settings.control_port)}/traffic "
        f"({settings.rate:g} req/s)",
        f"  sidecar metrics         {settings.url(settings.admin_port)}/metrics",
        "  service metrics         "
        + ", ".join(f"{n} :{settings.app_port(n)}/metrics" for n in SERVICES),
        f"  service logs (JSON)     {logs}",
    ]
    return "\n".join(lines)


def run_demo(
    settings: DemoSettings,
    config: Config | None,
    serve_args: list[str],
    logs_path: str,
) -> int:
    """Run until interrupted. `config` is None when meshscope runs elsewhere."""
    if config is not None and config.auth.enabled and not os.environ.get(HEADERS_VARIABLE):
        # Every span of the demo would be refused: say so instead of showing an empty UI.
        print(
            "meshscope demo: auth.enabled is on: set OTEL_EXPORTER_OTLP_HEADERS="
            "authorization=Bearer%20<token> with a write token (docs/security.md)",
            file=sys.stderr,
        )
        return 2
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    env = dict(os.environ)
    env.setdefault("MESHSCOPE_PIPELINE__FLUSH_INTERVAL_SECONDS", "5")
    children: list[Child] = []
    logs: IO[bytes] | None = None
    try:
        if config is not None:
            server = _spawn(
                "meshscope serve", ["-m", "meshscope.cli", "serve", *serve_args], env, None
            )
            children.append(server)
            health = f"{_scheme(config)}://{config.server.host}:{config.server.ui_port}/health"
            if not wait_http(health, 60, server):
                print("meshscope demo: meshscope serve did not start", file=sys.stderr)
                return 1
            # Another process on the UI port answers /health too: the demo's own server
            # must hold the port (it exits with its own one-line reason otherwise).
            owner = holder(config.server.ui_port)
            if server.process.poll() is not None or owner not in (None, server.process.pid):
                print(
                    f"meshscope demo: meshscope serve did not start (port"
                    f" {config.server.ui_port} is held by {describe(owner) if owner else '?'})",
                    file=sys.stderr,
                )
                return 1
        if logs_path != "-":
            os.makedirs(os.path.dirname(logs_path) or ".", exist_ok=True)
            logs = open(logs_path, "ab")  # noqa: SIM115 (closed in finally)
        child = ["-m", "meshscope.demo.child"]
        children.append(_spawn("sidecars", [*child, "sidecars", settings.to_json()], env, None))
        children.append(_spawn("services", [*child, "services", settings.to_json()], env, logs))
        if not wait_http(f"{settings.url(settings.control_port)}/faults", 30, children[-1]):
            print("meshscope demo: the demo services did not start", file=sys.stderr)
            return 1
        print(_banner(settings, config, logs_path), flush=True)
        while not stop.wait(0.2):
            for running in children:
                code = running.process.poll()
                if code is not None:
                    print(f"meshscope demo: {running.name} exited ({code})", file=sys.stderr)
                    return 1
        return 0
    finally:
        stop_children(children[::-1])  # services, sidecars, then meshscope
        if logs is not None:
            logs.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
