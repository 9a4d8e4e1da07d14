"""The deployment tests run whole deployments side by side (minutes, and most of the
machine): ``make e2e-deployment`` runs them; the default suite skips them."""

from __future__ import annotations

import os

import pytest

SWITCH = "SERVICEMONTH_E2E_DEPLOYMENT"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.environ.get(SWITCH) == "1":
        return
    skip = pytest.mark.skip(reason=f"whole deployments: make e2e-deployment ({SWITCH}=1)")
    for item in items:
        if item.get_closest_marker("deployment"):
            item.add_marker(skip)
