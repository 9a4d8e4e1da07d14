"""The vocabularies forms offer: skills (with the words that map to them), availability and
the five ones. Public configuration, the same for everyone: no token, cacheable."""

from __future__ import annotations

from fastapi import APIRouter, Response

from services.registration import views
from services.registration.schemas import VocabularyOut

# The including router (api.py) adds the /api/v1 prefix.
router = APIRouter(tags=["registration"])


@router.get("/vocabulary")
def vocabulary(response: Response) -> VocabularyOut:
    """专长 terms, 可服务时间 with their labels, 五个一 with their names, the synonyms a
    free-text 专长 is mapped through (word → terms), 服务对象 categories (which need the
    resident's separate consent) and 服务项目 kinds. Anyone may read it; it is cached an hour."""
    response.headers["Cache-Control"] = "public, max-age=3600"
    return views.vocabulary()
