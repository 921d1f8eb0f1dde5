"""The UI with tenancy on, in chromium: a token of one tenant sees no picker and only its
tenant's services; a token of two tenants gets a tenant picker, sends the picked tenant as
`X-Scope-OrgID` on every API request, and sees that tenant's services only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from meshscope.auth.config import AuthConfig
from meshscope.model.batch import Batch
from meshscope.model.spans import Span, SpanKind
from meshscope.tenancy.config import TenancyConfig
from tests.serving import serving
from tests.ui.browser import CHROMIUM, Tab
from tests.ui.known_data import BASE, RANGE, known_app

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium", allow_module_level=True)
pytest.importorskip("playwright.sync_api", reason="the Python package playwright is missing")
from playwright.sync_api import expect

BOTH = "both-tenants-reader-0123456789ab"
ONE = "default-only-reader-0123456789ab"
TOKENS = f"""tokens:
  - {{name: both, token: {BOTH}, scopes: [read], tenants: [default, team-b]}}
  - {{name: one, token: {ONE}, scopes: [read]}}
"""


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tokens = Path(tmp_path_factory.mktemp("ui-tenants")) / "tokens.yaml"
    tokens.write_text(TOKENS)
    auth = AuthConfig(enabled=True, tokens_file=str(tokens))
    with known_app(auth=auth, tenancy=TenancyConfig(enabled=True)) as app:
        assert app.stacks is not None
        team_b = app.stacks.open("team-b").pipeline  # the known data is the default tenant's
        span = Span("b" * 32, "b" * 16, "GET /bravo", "bravo-shop", BASE, BASE + 10**7,
                    kind=SpanKind.SERVER)  # fmt: skip
        team_b.consume(Batch(spans=[span]))
        team_b.flush()
        with serving(app.ui) as url:
            yield url


def _login(tab: Tab, token: str) -> list[tuple[str, str | None]]:
    seen: list[tuple[str, str | None]] = []
    tab.page.on("request", lambda r: seen.append((r.url, r.headers.get("x-scope-orgid"))))
    tab.page.goto(f"{tab.base}/#/services?{RANGE}")
    tab.page.fill("#login-token", token)
    tab.page.click("#login-form button[type=submit]")
    tab.ready("services")
    return seen


def test_a_token_of_one_tenant_has_no_picker(tab: Tab) -> None:
    _login(tab, ONE)
    expect(tab.page.locator('tr[data-service="cart"]')).to_be_visible()
    expect(tab.page.locator('tr[data-service="bravo-shop"]')).to_have_count(0)
    expect(tab.page.locator("#tenant-picker")).to_be_hidden()


def test_the_picked_tenant_is_read(tab: Tab) -> None:
    seen = _login(tab, BOTH)
    picker = tab.page.locator("#tenant-picker")
    expect(picker).to_be_visible()
    expect(picker).to_have_value("default")
    expect(tab.page.locator('tr[data-service="cart"]')).to_be_visible()
    picker.select_option("team-b")
    expect(tab.page.locator('tr[data-service="bravo-shop"]')).to_be_visible()
    expect(tab.page.locator('tr[data-service="cart"]')).to_have_count(0)
    assert tab.page.evaluate("sessionStorage.getItem('meshscope.tenant')") == "team-b"
    assert "team-b" in [tenant for url, tenant in seen if "/api/" in url]
    # The trace search of the picked tenant lists its service.
    tab.page.goto(f"{tab.base}/#/traces?{RANGE}&service=bravo-shop")
    tab.ready("traces")
    expect(tab.page.locator("#view")).to_contain_text("GET /bravo")
