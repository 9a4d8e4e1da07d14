"""Pairing's HTTP routes: one router per concept, gathered here."""

from __future__ import annotations

from fastapi import APIRouter

from services.pairing import NAME, handlers, runtime
from shared.auth import add_status_route

router = APIRouter(prefix="/api/v1", tags=["pairing"])
add_status_route(router, NAME, runtime, handlers.stats)
