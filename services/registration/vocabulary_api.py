"""The vocabularies forms offer: skills (with the words that map to them), availability and
the five ones. Public configuration, the same for everyone: no token, cacheable."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from shared.vocabulary import (
    AVAILABILITY,
    AVAILABILITY_LABELS,
    FIVE_ONES,
    PROJECT_KINDS,
    SENSITIVE_CATEGORIES,
    SKILL_SYNONYMS,
    SKILLS,
    TARGET_CATEGORIES,
)

# The including router (api.py) adds the /api/v1 prefix.
router = APIRouter(tags=["registration"])


@router.get("/vocabulary")
def vocabulary(response: Response) -> dict[str, Any]:
    """专长 terms, 可服务时间 with their labels, 五个一 with their names, the synonyms a
    free-text 专长 is mapped through (word → terms), 服务对象 categories (which need the
    resident's separate consent) and 服务项目 kinds. Anyone may read it; it is cached an hour."""
    response.headers["Cache-Control"] = "public, max-age=3600"
    return {
        "skills": list(SKILLS),
        "availability": [{"value": a, "label": AVAILABILITY_LABELS[a]} for a in AVAILABILITY],
        "five_ones": [{"kind": kind, "label": label} for kind, label in FIVE_ONES.items()],
        "synonyms": {word: list(terms) for word, terms in SKILL_SYNONYMS.items()},
        "target_categories": [
            {"value": c, "sensitive": c in SENSITIVE_CATEGORIES} for c in TARGET_CATEGORIES
        ],
        "project_kinds": list(PROJECT_KINDS),
    }
