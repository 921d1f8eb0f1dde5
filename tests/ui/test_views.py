"""Each view of the web UI renders the known data's numbers and elements in chromium; clicks
lead from the overview to the map, trace search, a trace and its logs; markup in telemetry is
shown as text. Screenshots of each view go to artifacts/screenshots/."""

from __future__ import annotations

import pytest

from tests.ui.browser import CHROMIUM, Tab
from tests.ui.known_data import (
    BASE,
    END,
    ERROR_EVERY,
    MS,
    RANGE,
    RANGE_SECONDS,
    SLO,
    TRACES,
    XSS_ATTRIBUTE,
    XSS_LOG,
    XSS_NAME,
    XSS_TRACE,
    S,
    span_id,
    trace_id,
)  # fmt: skip

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium", allow_module_level=True)
pytest.importorskip("playwright.sync_api", reason="the Python package playwright is missing")
from playwright.sync_api import expect

ERRORS = TRACES // ERROR_EVERY
RATE = f"{TRACES / RANGE_SECONDS:.2f}"  # requests/s as the UI prints rates under 10
LAST_ERROR = max(n for n in range(TRACES) if n % ERROR_EVERY == 0)


def test_services_overview_shows_golden_signals_and_sorts(tab: Tab) -> None:
    tab.open(f"/services?{RANGE}", "services")
    page = tab.page
    cart = page.locator('tr[data-service="cart"]')
    expect(cart.locator('[data-col="rate"]')).to_contain_text(RATE)
    expect(cart.locator('[data-col="errorRatio"]')).to_contain_text("25.0%")
    # Half of cart's server spans last 3 ms, half 30 ms: from the exponential histogram, the
    # midpoint of the bucket holding 3 ms (3.018), and 30 ms (the midpoint, 29.99).
    expect(cart.locator('[data-col="p50Ms"]')).to_have_text("3.02 ms")
    expect(cart.locator('[data-col="p95Ms"]')).to_have_text("30.0 ms")
    expect(cart.locator('[data-col="p99Ms"]')).to_contain_text("30.0 ms")
    page.wait_for_selector(".page[data-complete]")  # the sparklines' queries are in
    expect(cart.locator('[data-col="cpu"]')).to_contain_text("0.50")  # saturation: cores
    frontend = page.locator('tr[data-service="frontend"]')
    expect(frontend.locator('[data-col="errorRatio"]')).to_contain_text("0%")
    expect(frontend.locator('[data-col="cpu"]')).to_contain_text("0.25")
    expect(page.locator('[data-kpi="services"] .kpi-value')).to_have_text("2")
    slo = page.locator(f'tr[data-slo="{SLO.name}"]')  # the SLO card, evaluated at `to`
    expect(slo.locator('[data-col="sli"]')).to_have_text(f"{100 - 100 / ERROR_EVERY:.2f}%")
    expect(slo.locator('[data-col="budget"]')).to_have_text("exhausted")
    expect(slo.locator('[data-col="burn"]')).to_have_text(f"{100 / ERROR_EVERY:.1f}")
    expect(slo.locator('[data-col="state"]')).to_have_text("page")
    expect(slo.locator("a.slo-traces")).to_have_attribute(
        "href", f"#/traces?{RANGE}&service=cart&status=error"
    )
    assert page.locator("tr[data-service] .spark canvas").count() >= 6  # sparklines drawn
    # The rule files' alerts (tests/ui/known_data.py: RULES, LOG_RULES), firing first.
    alerts = page.locator("tr[data-alert]")
    expect(alerts).to_have_count(3)
    assert [alerts.nth(i).get_attribute("data-alert") for i in range(3)][2] == "SlowCart"
    errors = page.locator('tr[data-alert="CartErrors"]')
    expect(errors.locator('[data-col="state"]')).to_have_text("firing")
    expect(errors.locator('[data-col="summary"]')).to_have_text("cart fails")
    expect(errors.locator("a.alert-traces")).to_have_attribute(
        "href", f"#/traces?{RANGE}&service=cart"
    )
    logged = page.locator('tr[data-alert="CartErrorLogs"]')
    expect(logged.locator('[data-col="summary"]')).to_have_text(f"{ERRORS} declined payments")
    expect(page.locator('tr[data-alert="SlowCart"] [data-col="state"]')).to_have_text("pending")
    tab.shot("services")
    page.get_by_role("link", name="Service", exact=True).click()  # sort by name, descending
    tab.ready("services")
    assert "sort=service" in page.url
    expect(page.locator("tbody tr").first).to_have_attribute("data-service", "frontend")
    page.get_by_role("link", name="Service ▼", exact=True).click()  # ascending
    tab.ready("services")
    expect(page.locator("tbody tr").first).to_have_attribute("data-service", "cart")


def test_overview_rate_covers_the_time_a_service_reported_and_says_how(tab: Tab) -> None:
    """Over an hour that holds 10 minutes of data, the rate is calls per second of those 10
    minutes (from the series' start at the first trace to the last flush, END), as on the
    service page's chart; the percentiles say they are estimates and how good."""
    hour = f"from={END // MS - 3600 * 1000}&to={END // MS}"
    honest = f"{TRACES / ((END - (BASE + 100 * MS)) / S):.2f}"  # 0.06, not 40 / 3600
    tab.open(f"/services?{hour}", "services")
    page = tab.page
    cart = page.locator('tr[data-service="cart"]')
    expect(cart.locator('[data-col="rate"]')).to_contain_text(honest)
    note = page.locator('[data-note="percentiles"]')
    expect(note).to_contain_text("exponential histogram")
    expect(note).to_contain_text("within ±2.2%")
    p99 = page.locator("th", has_text="p99")
    expect(p99).to_have_attribute("title", note.inner_text())
    page.locator('tr[data-service="cart"] a.service-link').click()
    tab.ready("service")
    expect(page.locator('[data-kpi="rate"] .kpi-value')).to_have_text(honest)
    page.wait_for_selector(".page[data-complete]")  # the charts are drawn


def test_service_page_charts_and_operations(tab: Tab) -> None:
    tab.open(f"/services?{RANGE}", "services")
    tab.page.locator('tr[data-service="cart"] a.service-link').click()
    tab.ready("service")
    page = tab.page
    assert "#/service/cart" in page.url and "from=" in page.url  # the range travels along
    expect(page.locator('[data-kpi="calls"] .kpi-value')).to_have_text(str(TRACES))
    expect(page.locator('[data-kpi="errorRatio"] .kpi-value')).to_have_text("25.0%")
    expect(page.locator('[data-kpi="p99"] .kpi-value')).to_have_text("30.0 ms")
    expect(page.locator('[data-note="percentiles"]')).to_contain_text("within ±2.2%")
    expect(page.locator(".chart-grid .uplot")).to_have_count(3)
    operation = page.locator('.operations-table tr[data-operation="POST /cart"]')
    expect(operation).to_contain_text("25.0%")
    tab.shot("service")


def test_service_map_edges_and_click_to_traces(tab: Tab) -> None:
    tab.open(f"/map?{RANGE}", "map")
    page = tab.page
    edge = page.locator('tr[data-edge="frontend->cart"]')
    expect(edge).to_contain_text(str(TRACES))
    expect(edge).to_contain_text("25.0%")
    expect(edge).to_contain_text("30.0 ms")  # server side: 30 ms the max
    expect(edge).to_have_class("edge-bad")  # a problem edge
    expect(page.locator('tr[data-edge="cart->carts"]')).to_have_class("edge-ok")
    nodes = page.evaluate("window.meshscope.cy.nodes().map(n => n.id()).sort()")
    assert nodes == ["cart", "carts", "frontend"]
    label = page.evaluate("window.meshscope.cy.edges('[source=\"frontend\"]').data('label')")
    assert label == f"{RATE}/s · 25.0% err · p99 30.0 ms"
    tab.shot("map")
    box = page.locator("#map-canvas").bounding_box()
    assert box is not None
    point = page.evaluate(
        "window.meshscope.cy.edges('[source=\"frontend\"]').renderedMidpoint()"
    )  # click the edge on the canvas: its traces (searched in the called service)
    page.mouse.click(box["x"] + point["x"], box["y"] + point["y"])
    tab.ready("traces")
    assert "service=cart" in page.url


def test_trace_search_filters_and_lists(tab: Tab) -> None:
    tab.open(f"/traces?service=cart&status=error&{RANGE}", "traces")
    page = tab.page
    rows = page.locator(".traces-table tbody tr")
    expect(rows).to_have_count(ERRORS)
    expect(page.locator(".result-count")).to_have_text(f"{ERRORS} traces")
    for cell in page.locator('.traces-table [data-col="errors"]').all_text_contents():
        assert cell == "2"  # frontend's client span and cart's server span
    expect(rows.first).to_contain_text("frontend: GET /checkout")
    expect(rows.first).to_have_attribute("data-trace", trace_id(LAST_ERROR))  # newest first
    expect(page.locator(".scatter canvas").first).to_be_visible()
    tab.shot("traces")
    # Only odd traces have a 30 ms cart span; the form's fields become URL state.
    page.locator("select[name=status]").select_option("")
    page.locator("input[name=minDuration]").fill("20ms")
    page.get_by_role("button", name="Find traces").click()
    tab.ready("traces")
    assert "minDuration=20ms" in page.url
    expect(page.locator(".result-count")).to_have_text(f"{TRACES // 2} traces")
    page.locator("input[name=tags]").fill("customer.tier=silver")
    page.get_by_role("button", name="Find traces").click()
    tab.ready("traces")
    expect(page.locator(".state.empty")).to_contain_text("No traces match")


def test_trace_view_waterfall_details_and_logs(tab: Tab) -> None:
    n = LAST_ERROR  # an error trace, cart 3 ms: the root lasts 7 ms
    tab.open(f"/trace/{trace_id(n)}", "trace")
    page = tab.page
    expect(page.locator('[data-kpi="latency"] .kpi-value')).to_have_text("7.00 ms")
    expect(page.locator('[data-kpi="spans"] .kpi-value')).to_have_text("4")
    expect(page.locator('[data-kpi="errors"] .kpi-value')).to_have_text("2")
    expect(page.locator('[data-kpi="root"] .kpi-value')).to_have_text("frontend")
    expect(page.locator(".wf-row")).to_have_count(4)
    expect(page.locator(".wf-row.error")).to_have_count(2)
    assert page.locator(".wf-crit").count() >= 1  # the critical path is drawn
    expect(page.get_by_role("link", name="Trace JSON")).to_have_attribute(
        "href", f"/api/traces/{trace_id(n)}"
    )
    page.evaluate("document.querySelectorAll('.wf-row').forEach((r) => { r.kept = true; })")
    page.locator(f'.wf-row[data-span="{span_id(n, 2)}"]').click()  # cart's server span
    details = page.locator(".wf-details")
    expect(details).to_have_count(1)
    # Selecting changes the rows in place (every row was made again: ~3 s per click at 10k).
    assert page.evaluate("[...document.querySelectorAll('.wf-row')].every((r) => r.kept)")
    expect(page.locator(".wf-row.selected")).to_have_attribute("data-span", span_id(n, 2))
    page.get_by_role("button", name="Critical path").click()
    expect(page.locator(".waterfall.no-critical")).to_have_count(1)
    assert "critical=off" in page.url  # the toggle travels in the shared URL
    page.get_by_role("button", name="Critical path").click()
    expect(details).to_contain_text("http.status_code")
    expect(details).to_contain_text("customer.tier")
    expect(details).to_contain_text("cache miss")
    expect(details).to_contain_text("k8s.pod.name")
    expect(details).to_contain_text("ERROR: payment declined")
    assert f"span={span_id(n, 2)}" in page.url
    logs = page.locator("#trace-logs")
    expect(logs).to_contain_text(f"payment declined for order {n}")
    expect(logs).to_contain_text(f"reserved items for order {n}")
    tab.shot("trace")
    page.locator(f'.wf-row[data-span="{span_id(n, 0)}"] .twisty').click()  # collapse the root
    expect(page.locator(".wf-row")).to_have_count(1)
    page.locator(f'.wf-row[data-span="{span_id(n, 0)}"]').focus()
    page.keyboard.press("ArrowRight")  # expand again from the keyboard
    expect(page.locator(".wf-row")).to_have_count(4)
    page.keyboard.press("ArrowDown")
    expect(page.locator(".wf-row:focus")).to_have_attribute("data-span", span_id(n, 1))


def test_logs_explorer_newest_first_linked_to_traces(tab: Tab) -> None:
    tab.open(f"/logs?service=cart&severity=error&{RANGE}", "logs")
    page = tab.page
    rows = page.locator(".logs-table tbody tr")
    expect(rows).to_have_count(ERRORS)
    bodies = page.locator(".logs-table .body-text").all_text_contents()
    expected = [f"payment declined for order {n}" for n in range(TRACES) if n % ERROR_EVERY == 0]
    assert bodies == expected[::-1]
    tab.shot("logs")
    page.locator("input[name=q]").fill("order 3")
    page.locator("select[name=severity]").select_option("")  # submits the form
    tab.ready("logs")
    expect(page.locator(".logs-table .body-text").first).to_have_text("reserved items for order 39")
    rows.first.locator("a.trace-link").click()
    tab.ready("trace")
    assert f"#/trace/{trace_id(39)}" in page.url
    expect(page.locator(".wf-row.selected")).to_have_attribute("data-span", span_id(39, 2))


def test_trace_logs_link_opens_the_explorer_on_exactly_that_traces_logs(tab: Tab) -> None:
    n = 0  # an error trace with two log lines, among ~40 other traces' lines nearby
    tab.open(f"/trace/{trace_id(n)}", "trace")
    page = tab.page
    page.get_by_role("link", name="This trace's logs in the explorer →").click()
    tab.ready("logs")
    assert f"trace={trace_id(n)}" in page.url
    bodies = page.locator(".logs-table .body-text")
    expect(bodies).to_have_text(
        [f"payment declined for order {n}", f"reserved items for order {n}"]
    )
    links = page.locator(".logs-table a.trace-link").evaluate_all("(as) => as.map(a => a.href)")
    assert len(links) == 2 and all(f"/trace/{trace_id(n)}" in href for href in links)
    expect(page.locator(".trace-filter")).to_contain_text("Only the logs of trace")
    page.locator(".trace-filter a.clear-trace").click()
    tab.ready("logs")
    assert "trace=" not in page.url
    expect(page.locator(".logs-table tbody tr").nth(2)).to_be_attached()  # others' logs too


def test_navigation_by_clicking_overview_map_traces_trace_logs(tab: Tab) -> None:
    tab.open(f"/services?{RANGE}", "services")
    page = tab.page
    page.get_by_role("link", name="Service map").click()
    tab.ready("map")
    page.locator('tr[data-edge="frontend->cart"] a').click()
    tab.ready("traces")
    expect(page.locator("select[name=service]")).to_have_value("cart")
    page.locator(".traces-table a.trace-link").first.click()
    tab.ready("trace")
    expect(page.locator(".wf-row").first).to_be_visible()
    page.get_by_role("link", name="This trace's logs in the explorer →").click()
    tab.ready("logs")
    assert page.locator(".logs-table tbody tr").count() >= 1
    page.keyboard.press("g")
    page.keyboard.press("s")  # keyboard: back to the services overview
    tab.ready("services")
    page.keyboard.press("/")
    expect(page.locator("input[type=search]")).to_be_focused()


def test_markup_in_telemetry_is_shown_as_text(tab: Tab) -> None:
    tab.open(f"/trace/{trace_id(XSS_TRACE)}?span={span_id(XSS_TRACE, 4)}", "trace")
    page = tab.page
    expect(page.locator(".wf-row .op-name", has_text=XSS_NAME)).to_have_count(1)
    expect(page.locator(".wf-details")).to_contain_text(XSS_ATTRIBUTE)
    expect(page.locator("#trace-logs")).to_contain_text(XSS_LOG)
    assert page.locator("#view script, #view img").count() == 0
    tab.open(f"/traces?service=cart&{RANGE}", "traces")
    options = page.locator("select[name=operation] option").all_text_contents()
    assert XSS_NAME in options
    tab.open(f"/logs?service=cart&q=onerror&{RANGE}", "logs")
    expect(page.locator(".logs-table .body-text")).to_have_text([XSS_LOG])
    assert page.locator("#view img").count() == 0
    # The `tab` fixture fails the test if any dialog (alert) opened or a script error occurred.
