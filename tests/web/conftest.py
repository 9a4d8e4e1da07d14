"""The page tests share one running servicemonth per test worker (starting one takes seconds)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.web.site import Site, running_site

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PHONE = {"width": 390, "height": 844}


@pytest.hookimpl(tryfirst=True)  # before xdist turns the marks into groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The page tests and the demos each run a whole servicemonth (a dozen processes): they
    share one test worker, one after the other, while the other worker runs the rest. Side
    by side on two cores they starve the embedded demo (8 minutes instead of 2.5)."""
    for item in items:
        if "tests/web/" in str(item.path):
            item.add_marker(pytest.mark.xdist_group("whole-system"))


# Package-scoped: the server (a dozen processes polling the embedded broker) and the
# browser go away after the last page test instead of weighing on the rest of the run.
@pytest.fixture(scope="package")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    yield from running_site(tmp_path_factory.mktemp("site") / "var")


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, driven by Playwright (which cannot download its own here)."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM)
        yield chromium
        chromium.close()


@pytest.fixture
def phone(browser: Browser) -> Iterator[Callable[[], Page]]:
    """New phones (browser contexts at 390 × 844, Chinese), closed after the test."""
    contexts: list[BrowserContext] = []

    def open_phone() -> Page:
        context = browser.new_context(viewport=PHONE, locale="zh-CN", device_scale_factor=2)
        contexts.append(context)
        return context.new_page()

    yield open_phone
    for context in contexts:
        context.close()
