"""Render time of each web UI view in chromium, against the 10M-span DuckDB file of
benchmarks/query.py (/tmp/meshscope-query-bench.duckdb) when it exists, else against a
smaller generated one (--spans, default 1M, in /tmp/meshscope-ui-bench.duckdb); says which.

A view's render time: from navigating to its URL until the page marks the view rendered
(its numbers, tables and lists built from every API answer). The services overview and the
service page draw their PromQL sparklines/charts after that: "charts" is the median time
until those are drawn too. Each view: a cold load, then `--runs` in-page navigations;
prints the median and the worst. Needs /usr/bin/chromium and playwright.

    .venv/bin/python benchmarks/ui.py [--file PATH] [--spans N] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from playwright.sync_api import Page, sync_playwright
from starlette.applications import Starlette

sys.path.insert(0, str(Path(__file__).parent))
from meshscope.app import build
from meshscope.config import Config, StorageConfig
from query_data import DAY_NS, T0, load

BIG = Path("/tmp/meshscope-query-bench.duckdb")
SMALL = Path("/tmp/meshscope-ui-bench.duckdb")
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
HOUR_MS = 3600 * 1000
TARGET_MS = 1000
CHARTED = {"services", "service"}


@contextmanager
def serving(app: Starlette) -> Iterator[str]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)


def render_ms(page: Page, url: str, view: str, cold: bool) -> tuple[float, float]:
    """(ms until the view is rendered, ms until its charts are drawn too)."""
    started = time.perf_counter()
    if cold:
        page.goto(url)
    else:
        page.evaluate("(u) => { location.href = u; }", url)
    page.wait_for_selector(f'body[data-ready="{view}"]', timeout=120_000)
    ready = (time.perf_counter() - started) * 1000
    if view in CHARTED:  # these views draw their PromQL charts after the numbers
        page.wait_for_selector(".page[data-complete]", state="attached", timeout=120_000)
    return ready, (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--file", type=Path, default=None)
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    path = args.file or (BIG if BIG.exists() else SMALL)
    if path == BIG:
        print(f"store: {path} (the 10M-span file of benchmarks/query.py)")
    else:
        print(f"store: {path} ({BIG} is missing: generated {args.spans:,} spans over 24 h)")
        load(path, args.spans).close()
    app = build(Config(storage=StorageConfig(kind="duckdb", path=str(path))))
    spans = sum(app.storage.traces.span_counts().values())
    print(f"spans: {spans:,}")
    day = f"from={T0 // 10**6}&to={(T0 + DAY_NS) // 10**6}"
    mid = T0 // 10**6 + 12 * HOUR_MS
    hour = f"from={mid}&to={mid + HOUR_MS}"
    try:
        with serving(app.ui) as base, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{base}/#/traces?service=cart&limit=20&{hour}")
            page.wait_for_selector('body[data-ready="traces"]', timeout=120_000)
            trace = page.locator(".traces-table tbody tr").first.get_attribute("data-trace")
            views = [
                ("services overview, 24 h", f"/services?{day}", "services"),
                ("services overview, 1 h", f"/services?{hour}", "services"),
                ("service page (cart), 24 h", f"/service/cart?{day}", "service"),
                ("service map, 24 h", f"/map?{day}", "map"),
                ("trace search (cart, 1 h, 50)", f"/traces?service=cart&{hour}", "traces"),
                ("trace search (cart errors, 24 h, 50)",
                 f"/traces?service=cart&status=error&{day}", "traces"),
                (f"trace view ({trace})", f"/trace/{trace}?{hour}", "trace"),
                ("logs explorer, 1 h", f"/logs?{hour}", "logs"),
            ]  # fmt: skip
            print(f"{'view':<44} {'cold':>7} {'median':>7} {'worst':>7} {'charts':>8}"
                  f"  (ms; target {TARGET_MS} ms)")  # fmt: skip
            for label, fragment, view in views:
                url = f"{base}/#{fragment}"
                cold, _ = render_ms(page, url, view, cold=True)
                warm, full = [], []
                for i in range(args.runs):  # via another URL, so each run navigates
                    render_ms(page, f"{base}/#/blank{i}", f"blank{i}", cold=False)
                    ready, complete = render_ms(page, url, view, cold=False)
                    warm.append(ready)
                    full.append(complete)
                median = statistics.median(warm)
                charts = f"{statistics.median(full):8.0f}" if view in CHARTED else f"{'-':>8}"
                verdict = "ok" if median <= TARGET_MS else "OVER"
                print(f"{label:<44} {cold:7.0f} {median:7.0f} {max(warm):7.0f} {charts}  {verdict}")
            browser.close()
    finally:
        app.storage.close()


if __name__ == "__main__":
    main()
