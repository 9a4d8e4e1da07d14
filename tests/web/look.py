"""Looking at a page as a person would: a full-page screenshot kept for people to look at
(``test-artifacts/web/``, git-ignored), and axe-core's accessibility rules."""

from __future__ import annotations

from typing import Any

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page

from tests.web.site import ARTIFACTS

AXE = Axe()
#: axe-core impacts the pages must not have.
BLOCKING = ("serious", "critical")


def look(page: Page, name: str) -> list[dict[str, Any]]:
    """Screenshot ``page`` as ``name``.png; the serious or critical axe violations on it."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    violations = AXE.run(page).response["violations"]
    return [
        {"page": name, "rule": v["id"], "impact": v["impact"], "nodes": len(v["nodes"])}
        for v in violations
        if v["impact"] in BLOCKING
    ]
