"""Details of the UI measured in chromium: ids keep their leading zeros, the trace search asks
for a service instead of picking one, time-axis labels never overlap, sparkline cells line up
with the other cells of their row."""

from __future__ import annotations

from itertools import pairwise
from typing import TYPE_CHECKING, Any

import pytest

from meshscope.model.batch import Batch
from meshscope.model.spans import Span, SpanKind
from meshscope.query.budget import warn
from tests.serving import serving
from tests.ui.browser import CHROMIUM, VIEWPORT, Tab
from tests.ui.known_data import FROM_MS, MS, RANGE, TRACES, known_app, span_id, trace_id

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium", allow_module_level=True)
pytest.importorskip("playwright.sync_api", reason="the Python package playwright is missing")
from playwright.sync_api import expect

if TYPE_CHECKING:
    from playwright.sync_api import Browser

# The x-axis labels of the uPlot charts inside `selector`, as boxes: uPlot draws them on its
# canvas, so each box is the label's text measured in the axis font, centred on its tick.
AXIS_LABELS = """(selector) => {
  const measure = document.createElement("canvas").getContext("2d");
  return [...window.meshscope.charts].filter((u) => u.root.closest(selector)).map((u) => {
    const axis = u.axes[0];
    const px = (size) => `${parseFloat(size) / devicePixelRatio}px`;  // uPlot scales the font
    measure.font = axis.font[0].replace(/^[\\d.]+px/, px);
    return axis._splits.map((value, i) => {
      const text = String(axis._values[i] ?? "");
      const width = Math.max(...text.split("\\n").map((line) => measure.measureText(line).width));
      const x = u.valToPos(value, "x");
      return { text, left: x - width / 2, right: x + width / 2 };
    }).filter((box) => box.text);
  });
}"""

# Vertical centres (px) in a row: each cell, its text (or the number beside a sparkline) and
# its sparkline.
ROW_CENTRES = """(row) => {
  const centre = (r) => r.top + r.height / 2;
  const text = (el) => {
    const r = document.createRange();
    r.selectNodeContents(el);
    return r.getBoundingClientRect();
  };
  return [...document.querySelector(row).querySelectorAll("td[data-col]")].map((td) => {
    const spark = td.querySelector(".spark");
    return { col: td.dataset.col, cell: centre(td.getBoundingClientRect()),
      text: centre(text(td.querySelector(".cell-spark > span") || td)),
      spark: spark ? centre(spark.getBoundingClientRect()) : null };
  });
}"""


def test_span_and_trace_ids_keep_leading_zeros(tab: Tab) -> None:
    n = 39
    page = tab.page
    tab.open(f"/trace/{trace_id(n)}", "trace")
    link = page.locator("#trace-logs a", has_text="span ").first
    expect(link).to_have_text(f"span {span_id(n, 2)}")  # 16 digits, zeros and all
    tab.open(f"/logs?service=cart&q=order {n}&{RANGE}", "logs")
    link = page.locator(".logs-table a.trace-link").first
    expect(link).to_have_attribute("title", trace_id(n))
    expect(link).to_have_text(trace_id(n)[16:])  # a 64-bit trace id: its low half
    tab.open(f"/traces?service=cart&{RANGE}", "traces")
    row = page.locator(f'tr[data-trace="{trace_id(n)}"]')
    expect(row.locator(".mono")).to_have_text(trace_id(n)[16:])


def test_numbers_never_round_to_a_value_they_are_not(tab: Tab) -> None:
    """The UI's formatting, run in chromium: 1,999 errors in 2,000 read "100.0%", an SLI of
    99.996% "100.00%", a burn rate of 0.04 "0.0", 400 ns "0 µs", 10 days "14400.0 min"."""
    tab.open(f"/services?{RANGE}", "services")
    shown = tab.page.evaluate(
        """() => import("/ui/js/format.js").then((f) => [
          f.percent(0.9995), f.percent(1), f.percent(0.25), f.nines(0.99996), f.nines(0.999),
          f.nines(1), f.burn(0.04), f.burn(14.4), f.duration(0.0004), f.duration(0.25),
          f.duration(864000000), f.duration(5400000), f.rate(0.005)])"""
    )
    assert shown == [
        ">99.9%", "100.0%", "25.0%", "99.996%", "99.90%", "100.00%", "0.04", "14.4",
        "400 ns", "250 µs", "10.0 d", "1.5 h", "0.005",
    ]  # fmt: skip


def test_the_waterfall_tree_of_a_very_deep_trace(tab: Tab) -> None:
    """A parent chain 20,000 deep: the tree was built by recursion, which overflowed the
    call stack past ~7,000 levels ("Could not load this view"); children in start order."""
    tab.open(f"/services?{RANGE}", "services")
    got = tab.page.evaluate(
        """() => import("/ui/js/jaeger.js").then(({ spanTree }) => {
          const span = (id, parent, start) => ({ spanID: id, startTime: start,
            references: parent ? [{ refType: "CHILD_OF", spanID: parent }] : [] });
          const chain = Array.from({ length: 20000 },
            (_, i) => span(`s${i}`, i ? `s${i - 1}` : "", i));
          const deep = spanTree({ spans: chain });
          const wide = spanTree({ spans: [span("r", "", 0), span("b", "r", 2), span("a", "r", 1),
            span("a1", "a", 3), span("x", "missing", 4)] });
          return [deep.length, deep[deep.length - 1].depth,
            wide.map((row) => `${row.span.spanID}:${row.depth}:${row.childCount}`)];
        })"""
    )
    assert got == [20000, 19999, ["r:0:2", "a:1:1", "a1:2:0", "b:1:0", "x:0:0"]]


def test_trace_search_asks_for_a_service_from_a_sorted_list(tab: Tab) -> None:
    tab.open(f"/traces?{RANGE}", "traces")
    page = tab.page
    select = page.locator("select[name=service]")
    options = select.locator("option").all_text_contents()
    assert options == ["Choose a service…", "cart", "frontend"]  # reported frontend first
    expect(select).to_have_value("")
    expect(page.locator(".state.empty")).to_contain_text("Choose a service")
    expect(page.locator(".traces-table")).to_have_count(0)  # nothing searched on a guess
    select.select_option("frontend")
    tab.ready("traces")
    assert "service=frontend" in page.url
    expect(page.locator(".result-count")).to_have_text(f"{TRACES} traces")
    page.reload()  # the choice is URL state
    tab.ready("traces")
    expect(page.locator("select[name=service]")).to_have_value("frontend")
    tab.open(f"/traces?service=gone&{RANGE}", "traces")  # a service no longer reported
    expect(page.locator("select[name=service]")).to_have_value("gone")


def overlaps(boxes: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(a["text"], b["text"]) for a, b in pairwise(boxes) if b["left"] < a["right"]]


@pytest.mark.parametrize("width", [640, 1024, 1400, 1920])
def test_time_axis_labels_do_not_overlap(tab: Tab, width: int) -> None:
    page = tab.page
    page.set_viewport_size({"width": width, "height": 900})
    searches = ["", "&limit=20", "&limit=1"]  # 10 minutes of traces, 5 minutes, one point
    for search in searches:
        tab.open(f"/traces?service=cart{search}&{RANGE}", "traces")
        page.wait_for_timeout(100)  # the chart draws once attached
        charts = page.evaluate(AXIS_LABELS, ".scatter")
        assert len(charts) == 1 and charts[0], search
        assert overlaps(charts[0]) == [], (search, [b["text"] for b in charts[0]])
    one_minute = f"from={FROM_MS}&to={FROM_MS + 60_000}"
    for time_range in [RANGE, one_minute, "range=6h", "range=7d"]:
        tab.open(f"/service/cart?{time_range}", "service")
        page.wait_for_selector(".page[data-complete]")
        page.wait_for_timeout(100)
        charts = page.evaluate(AXIS_LABELS, ".chart-grid")
        assert len(charts) == 3, time_range
        for boxes in charts:
            assert boxes, time_range
            assert overlaps(boxes) == [], (time_range, [b["text"] for b in boxes])


def test_sparkline_cells_line_up_with_their_row(tab: Tab) -> None:
    tab.open(f"/services?{RANGE}", "services")
    page = tab.page
    page.wait_for_selector(".page[data-complete]")
    for service in ("cart", "frontend"):
        cells = page.evaluate(ROW_CENTRES, f'tr[data-service="{service}"]')
        plain = [c["text"] for c in cells if c["spark"] is None]  # p50, p95: text only
        assert plain and len([c for c in cells if c["spark"] is not None]) >= 3
        for c in cells:
            assert abs(c["text"] - plain[0]) <= 1, (service, c)
            if c["spark"] is not None:
                assert abs(c["spark"] - c["cell"]) <= 1, (service, c)


def test_a_partial_answer_is_shown_above_the_view(browser: Browser) -> None:
    """An answer with a Warning header (the store left part of it out, as the sharded
    ClickHouse store does with a shard down: tests/cluster/test_shard_down.py) shows its
    texts above the view until a render whose answers are whole."""
    with known_app() as app, serving(app.ui) as url:
        catalog = app.storage.catalog
        whole = catalog.services

        def partial() -> list[str]:
            warn('ClickHouse shard 2 "b" of 2 unreachable')
            return whole()

        catalog.services = partial  # type: ignore[method-assign]
        context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
        try:
            tab = Tab(context.new_page(), url)
            tab.open(f"/traces?{RANGE}", "traces")
            banner = tab.page.locator("#partial")
            expect(banner).to_be_visible()
            expect(banner).to_have_text('Partial answer: ClickHouse shard 2 "b" of 2 unreachable')
            catalog.services = whole  # type: ignore[method-assign]
            tab.page.keyboard.press("r")
            tab.ready("traces")
            expect(banner).to_be_hidden()
            assert tab.errors == [] and tab.dialogs == []
        finally:
            context.close()


def test_failed_extras_say_so_instead_of_showing_nothing(browser: Browser) -> None:
    """A trace's logs or critical path, or the overview's trends, failing read as "no log
    records", no critical path and empty sparklines; each now says it failed."""
    with known_app() as app, serving(app.ui) as url:
        context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
        try:
            page = context.new_page()
            for pattern in ("**/traces/*/logs*", "**/traces/*/stats*", "**/red/range*"):
                page.route(pattern, lambda route: route.fulfill(
                    status=500, content_type="application/json", body='{"error": "disk on fire"}'
                ))  # fmt: skip
            tab = Tab(page, url)
            tab.open(f"/trace/{trace_id(3)}", "trace")
            expect(page.locator("#trace-logs .error-note")).to_have_text(
                "Could not load this trace's logs: disk on fire"
            )
            expect(
                page.get_by_text("Could not compute the critical path: disk on fire")
            ).to_be_visible()
            expect(page.get_by_role("button", name="Critical path")).to_be_disabled()
            tab.open(f"/services?{RANGE}", "services")
            page.wait_for_selector(".page[data-complete]")
            expect(page.locator(".error-note")).to_have_text(
                "Trends could not be loaded: disk on fire"
            )
        finally:
            context.close()


def test_odd_traces_are_flagged_and_the_trace_view_keeps_its_links(browser: Browser) -> None:
    """A span naming a parent the trace lacks, one starting before its parent and one naming
    itself: flagged as Jaeger UI flags them (they were drawn without a word, the last with an
    empty twisty); an unknown trace id is "not found" (it was a generic error); the Logs
    button links to the explorer (it was `#trace-logs`: the services view when opened alone);
    Esc leaves the keyboard on the row."""
    with known_app() as app, serving(app.ui) as url:
        t, odd = FROM_MS * MS + 60 * 10**9, "0d" * 16
        app.pipeline.consume(Batch(spans=[
            Span(odd, "01" * 8, "root", "web", t, t + 10**9, kind=SpanKind.SERVER),
            Span(odd, "02" * 8, "early", "api", t - 5 * 10**8, t + 10**8, "01" * 8),
            Span(odd, "03" * 8, "orphan", "api", t, t + 10**8, "de" * 8),
            Span(odd, "04" * 8, "self", "api", t, t + 10**8, "04" * 8),
            Span("0e" * 16, "05" * 8, "GET /", "w" * 5000, t, t + 10**8, kind=SpanKind.SERVER),
        ]))  # fmt: skip
        app.pipeline.flush()
        context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
        try:
            tab = Tab(context.new_page(), url)
            page = tab.page
            tab.open(f"/trace/{odd}", "trace")
            expect(page.locator('[data-note="oddities"]')).to_have_text(
                "⚠ 2 spans name a parent not in this trace (shown as roots); 1 span starts"
                " before its parent (clock skew between hosts?)."
            )
            expect(page.locator('.wf-row[data-span="0404040404040404"] .twisty')).to_have_count(0)
            logs = page.get_by_role("link", name="Logs (0)")
            assert "#/logs?" in (logs.get_attribute("href") or "")
            page.locator('.wf-row[data-span="0202020202020202"]').click()
            page.keyboard.press("Escape")
            expect(page.locator(".wf-details")).to_have_count(0)
            expect(page.locator(".wf-row:focus")).to_have_attribute("data-span", "02" * 8)
            tab.open(f"/trace/{'ee' * 16}", "trace")
            expect(page.get_by_text(f"Trace {'ee' * 16} was not found.")).to_be_visible()
            # A 5,000-character service name is cut (it pushed every service's numbers off
            # screen) and keeps its full text in the title.
            tab.open(f"/services?{RANGE}", "services")
            link = page.locator(f'tr[data-service="{"w" * 5000}"] a.service-link')
            expect(link).to_have_attribute("title", "w" * 5000)
            table = page.evaluate("document.querySelector('.services-table').scrollWidth")
            assert table <= VIEWPORT["width"], table
        finally:
            context.close()
