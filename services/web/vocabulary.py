"""What the forms offer: the skills and availability from ``GET /api/v1/vocabulary``."""

from __future__ import annotations

import time
from typing import Any

from services.web.client import Api

_vocabulary_cache: tuple[float, dict[str, Any]] | None = None


async def vocabulary(api: Api) -> dict[str, Any]:
    """What the forms offer (skills, availability, target categories, project kinds):
    GET /vocabulary, kept an hour as the API allows (``Cache-Control: public, max-age=3600``).
    When the API cannot answer, neither could it take the form: the page says so."""
    global _vocabulary_cache
    now = time.monotonic()
    if _vocabulary_cache is not None and now - _vocabulary_cache[0] < 3600:
        return _vocabulary_cache[1]
    found: dict[str, Any] = await api.get("/vocabulary")
    _vocabulary_cache = (now, found)
    return found
