"""A real Prometheus for agreement tests and benchmarks: write samples as OpenMetrics,
backfill them with `promtool tsdb create-blocks-from openmetrics`, serve them."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from meshscope.model.metrics import MetricPoint
from meshscope.query.promql.values import format_le
from tests.ingest.asgi_server import free_port


def available() -> str:
    """Why a real Prometheus cannot be used here ("" when it can)."""
    missing = [tool for tool in ("prometheus", "promtool") if shutil.which(tool) is None]
    return f"not on PATH: {', '.join(missing)}" if missing else ""


def _value(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(v)


def _series_line(name: str, labels: Iterable[tuple[str, str]], value: float, t_ns: int) -> str:
    body = ",".join(f'{k}="{v}"' for k, v in labels)
    ms = t_ns // 1_000_000
    return f"{name}{{{body}}} {_value(value)} {ms // 1000}.{ms % 1000:03d}\n"


def openmetrics(points: Iterable[MetricPoint]) -> str:
    """OpenMetrics text (no TYPE lines: every family is 'unknown'), series contiguous and
    in time order, histogram points expanded to _bucket/_sum/_count."""
    by_series: dict[tuple[str, tuple[tuple[str, str], ...]], list[str]] = {}
    for p in sorted(points, key=lambda p: p.time_ns):
        hist = p.histogram
        if hist is None:
            by_series.setdefault((p.name, p.labels), []).append(
                _series_line(p.name, p.labels, p.value, p.time_ns)
            )
            continue
        for bound, count in hist.cumulative():
            labels = tuple(sorted((*p.labels, ("le", format_le(bound)))))
            by_series.setdefault((p.name + "_bucket", labels), []).append(
                _series_line(p.name + "_bucket", labels, float(count), p.time_ns)
            )
        for suffix, value in (("_sum", hist.sum), ("_count", float(hist.count))):
            by_series.setdefault((p.name + suffix, p.labels), []).append(
                _series_line(p.name + suffix, p.labels, value, p.time_ns)
            )
    families: dict[str, list[str]] = {}
    for (name, _), lines in by_series.items():
        families.setdefault(name, []).extend(lines)
    return "".join(line for lines in families.values() for line in lines) + "# EOF\n"


@contextmanager
def running_prometheus(workdir: Path, points: Iterable[MetricPoint]) -> Iterator[str]:
    """Backfill `points` into a fresh TSDB, start Prometheus on it, yield its base URL."""
    data = workdir / "data.om"
    data.write_text(openmetrics(points))
    tsdb = workdir / "tsdb"
    subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(data), str(tsdb)],
        check=True,
        capture_output=True,
    )
    config = workdir / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1h\nscrape_configs: []\n")
    port = free_port()
    log = (workdir / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={tsdb}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=3650d",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prometheus exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/-/ready", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("prometheus did not become ready within 30 s")


def query_range(url: str, query: str, start_ms: int, end_ms: int, step_ms: int) -> Any:
    params = urllib.parse.urlencode(
        {"query": query, "start": start_ms / 1000, "end": end_ms / 1000, "step": step_ms / 1000}
    )
    request = urllib.request.Request(
        url + "/api/v1/query_range",
        data=params.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())
