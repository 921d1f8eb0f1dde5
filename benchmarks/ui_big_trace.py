"""The trace view with one big trace, in chromium: time to open it, to select a span (its row
and details), and to toggle the critical path. The trace is --spans spans (default 10,000) of
7 services, each span the child of the one a third of its index back (a bushy tree), in an
in-memory store served on a free loopback port. Prints the figures; asserts nothing.

    .venv/bin/python benchmarks/ui_big_trace.py [--spans 10000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.serving import serving

from meshscope.app import build
from meshscope.config import load_config
from meshscope.model.batch import Batch
from meshscope.model.spans import Span, SpanKind

CHROMIUM = "/usr/bin/chromium"
TRACE = "ab" * 16


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=10_000)
    args = parser.parse_args()
    app = build(load_config(env={"MESHSCOPE_STORAGE__KIND": "memory"}))
    t0 = time.time_ns() - 60 * 10**9
    spans = [
        Span(TRACE, f"{i + 1:016x}", f"op {i % 50}", f"svc-{i % 7}", t0 + i * 1000,
             t0 + i * 1000 + 500_000, f"{(i - 1) // 3 + 1:016x}" if i else "", SpanKind.SERVER)
        for i in range(args.spans)
    ]  # fmt: skip
    app.pipeline.consume(Batch(spans=spans))
    picks = [10, args.spans // 20, args.spans * 2 // 5, args.spans * 9 // 10, 20]
    with serving(app.ui) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        began = time.monotonic()
        page.goto(f"{url}/#/trace/{TRACE}")
        page.wait_for_selector('body[data-ready="trace"]')
        opened = time.monotonic() - began
        selects = []
        for i in picks:
            row = f'.wf-row[data-span="{i + 1:016x}"]'
            began = time.monotonic()
            page.locator(row).click()
            page.wait_for_selector(f"{row}.selected + .wf-details")
            selects.append(time.monotonic() - began)
        toggle = page.locator("button.toggle").first
        began = time.monotonic()
        toggle.click()
        page.wait_for_selector(".waterfall.no-critical")
        toggled = time.monotonic() - began
        browser.close()
    app.storage.close()
    print(
        f"{args.spans:,} spans: open {opened:.2f} s; select a span: median "
        f"{statistics.median(selects) * 1000:.0f} ms, worst {max(selects) * 1000:.0f} ms "
        f"({len(selects)} spans); critical-path toggle {toggled * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
