"""The UI with authentication on, in chromium: a 401 makes it ask for a token once (a wrong
one is asked for again), keeps it in sessionStorage and sends it as a header (never in a URL);
cancelling shows the refusal; behind a proxy that sets the header nothing is asked."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from meshscope.auth.config import AuthConfig
from tests.auth.tokens import READER, WRITER, write_tokens
from tests.serving import serving
from tests.ui.browser import CHROMIUM, VIEWPORT, Tab
from tests.ui.known_data import RANGE, known_app

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium", allow_module_level=True)
pytest.importorskip("playwright.sync_api", reason="the Python package playwright is missing")
from playwright.sync_api import expect

if TYPE_CHECKING:
    from playwright.sync_api import Browser


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tokens = write_tokens(tmp_path_factory.mktemp("ui-auth") / "tokens.yaml")
    auth = AuthConfig(enabled=True, tokens_file=str(tokens))
    with known_app(auth=auth) as app, serving(app.ui) as url:
        yield url


def _requests(tab: Tab) -> list[tuple[str, str | None]]:
    seen: list[tuple[str, str | None]] = []
    tab.page.on("request", lambda r: seen.append((r.url, r.headers.get("authorization"))))
    return seen


def test_asks_for_a_token_and_keeps_it_in_the_tab(tab: Tab) -> None:
    seen = _requests(tab)
    tab.page.goto(f"{tab.base}/#/services?{RANGE}")
    dialog = tab.page.locator("#login")
    expect(dialog).to_be_visible()
    expect(tab.page.locator("#login-message")).to_contain_text("asks for an access token")
    tab.page.fill("#login-token", "not-a-token-at-all-0000")
    tab.page.click("#login-form button[type=submit]")
    expect(tab.page.locator("#login-message")).to_contain_text("not accepted")
    tab.page.fill("#login-token", READER)
    tab.page.click("#login-form button[type=submit]")
    tab.ready("services")
    expect(dialog).to_be_hidden()
    expect(tab.page.locator('tr[data-service="cart"]')).to_be_visible()
    assert tab.page.evaluate("sessionStorage.getItem('meshscope.token')") == READER
    expect(tab.page.locator("#token-button")).to_be_visible()
    # Other views reuse the token without asking again.
    tab.page.goto(f"{tab.base}/#/traces?{RANGE}&service=cart")
    tab.ready("traces")
    expect(dialog).to_be_hidden()
    assert all(READER not in url for url, _ in seen)
    api = [header for url, header in seen if "/api/" in url]
    assert api and f"Bearer {READER}" in api
    # Forgetting the token asks again.
    tab.page.click("#token-button")
    expect(dialog).to_be_visible()
    assert tab.page.evaluate("sessionStorage.getItem('meshscope.token')") is None


def test_cancel_shows_the_refusal(tab: Tab) -> None:
    tab.page.goto(f"{tab.base}/#/services?{RANGE}")
    expect(tab.page.locator("#login")).to_be_visible()
    tab.page.click("#login-cancel")
    tab.ready("services")
    expect(tab.page.locator("#view")).to_contain_text("authentication required")


def test_a_token_without_the_read_scope_is_refused_plainly(tab: Tab) -> None:
    tab.page.goto(f"{tab.base}/#/services?{RANGE}")
    tab.page.fill("#login-token", WRITER)
    tab.page.click("#login-form button[type=submit]")
    tab.ready("services")
    expect(tab.page.locator("#view")).to_contain_text("lacks the scope")


def test_behind_a_proxy_that_sets_the_header_nothing_is_asked(
    browser: Browser, base_url: str
) -> None:
    context = browser.new_context(
        viewport=VIEWPORT,  # type: ignore[arg-type]
        extra_http_headers={"Authorization": f"Bearer {READER}"},
    )
    try:
        tab = Tab(context.new_page(), base_url)
        tab.open(f"/services?{RANGE}", "services")
        expect(tab.page.locator('tr[data-service="cart"]')).to_be_visible()
        expect(tab.page.locator("#login")).to_be_hidden()
        assert tab.errors == [] and tab.dialogs == []
    finally:
        context.close()


def test_page_and_assets_need_no_token(base_url: str) -> None:
    import httpx

    assert httpx.get(base_url + "/").status_code == 200
    assert httpx.get(base_url + "/ui/js/api.js").status_code == 200
    assert httpx.get(base_url + "/api/services").status_code == 401
