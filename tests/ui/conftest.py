"""A real app loaded with known data, served on a free port, and chromium pages on it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.serving import serving
from tests.ui.browser import ARGS, CHROMIUM, VIEWPORT, Tab
from tests.ui.known_data import known_app

if TYPE_CHECKING:
    from playwright.sync_api import Browser


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with known_app() as app, serving(app.ui) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def tab(browser: Browser, base_url: str) -> Iterator[Tab]:
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    opened = Tab(context.new_page(), base_url)
    try:
        yield opened
        assert opened.errors == [], opened.errors
        assert opened.dialogs == [], opened.dialogs
    finally:
        context.close()
