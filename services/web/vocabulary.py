"""What the forms offer: the skills and availability from ``GET /api/v1/vocabulary``."""

from __future__ import annotations

import time
from typing import Any

from services.web.client import Api, ApiError

#: Used when GET /vocabulary cannot be read (the forms still work).
FALLBACK_VOCABULARY: dict[str, Any] = {
    "skills": [
        "医疗护理", "健康咨询", "法律咨询", "政策宣讲", "心理疏导", "家电维修", "水电维修",
        "文艺演出", "教育辅导", "治安巡逻", "环境卫生", "文明创建", "助老服务", "关爱儿童",
        "就业指导", "矛盾调解", "信息技术", "书法绘画",
    ],
    "availability": [
        {"value": "weekday_daytime", "label": "工作日白天"},
        {"value": "weekday_evening", "label": "工作日晚上"},
        {"value": "weekend", "label": "周末"},
    ],
}  # fmt: skip

_vocabulary_cache: tuple[float, dict[str, Any]] | None = None


async def vocabulary(api: Api) -> dict[str, Any]:
    """The skills and availability the forms offer: GET /vocabulary, kept an hour as the
    API allows (``Cache-Control: public, max-age=3600``); a fallback when it cannot be read."""
    global _vocabulary_cache
    now = time.monotonic()
    if _vocabulary_cache is not None and now - _vocabulary_cache[0] < 3600:
        return _vocabulary_cache[1]
    try:
        found = await api.get("/vocabulary")
    except ApiError:
        return FALLBACK_VOCABULARY
    if not isinstance(found, dict) or not found.get("skills"):
        return FALLBACK_VOCABULARY
    _vocabulary_cache = (now, found)
    return found
