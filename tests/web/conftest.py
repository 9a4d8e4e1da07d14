"""The page tests share one running servicemonth per test worker (starting one takes seconds)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.web.site import Site, running_site


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    yield from running_site(tmp_path_factory.mktemp("site") / "var")
