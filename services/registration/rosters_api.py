"""Registration's roster routes (unit rosters, 花名册)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1", tags=["registration"])
