"""Debian's chromium driven by Playwright against the UI of a real app on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Dialog, Page

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
VIEWPORT = {"width": 1400, "height": 900}


class Tab:
    """A page of the UI at `base`, recording script errors and dialogs (the fixture fails the
    test on any)."""

    def __init__(self, page: Page, base: str) -> None:
        self.page, self.base = page, base
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("dialog", self._dialog)
        page.set_default_timeout(10_000)

    def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def open(self, fragment: str, view: str) -> None:
        self.page.goto(f"{self.base}/#{fragment}")
        self.ready(view)

    def ready(self, view: str) -> None:
        """Wait until `view` has rendered (the shell marks the body when a view is done)."""
        self.page.wait_for_selector(f'body[data-ready="{view}"]')

    def shot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.wait_for_timeout(300)  # charts draw on the next animation frames
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
