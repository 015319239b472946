"""Fixtures of the browser tests: one served catalogue and one Chromium for the whole run, a fresh
browser context per test whose console errors fail the test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from webstack import CHROMIUM_FLAGS, TIMEOUT_MS, Console, ServedCatalogue, chromium_path, served_catalogue


@pytest.fixture(scope="session")
def served() -> Iterator[ServedCatalogue]:
    # Session-wide: crawling and extracting the catalogue is the slow part, and every browser test reads it only.
    with served_catalogue() as catalogue:
        yield catalogue


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, served: ServedCatalogue) -> Iterator[Any]:
    context = browser.new_context(base_url=served.url, viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.console = Console(page)
    yield page
    context.close()
    assert page.console.errors == [], "the page logged errors"
