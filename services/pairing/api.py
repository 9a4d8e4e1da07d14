"""Pairing's HTTP routes: one router per concept, gathered here."""

from __future__ import annotations

from fastapi import APIRouter

from services.pairing import NAME, five_ones_api, needs_api, views, wishes_api
from services.pairing.bootstrap import runtime
from shared.auth import add_status_route

router = APIRouter(prefix="/api/v1", tags=["pairing"])
add_status_route(router, NAME, runtime, views.stats)
router.include_router(wishes_api.router)
router.include_router(five_ones_api.router)
router.include_router(needs_api.router)
