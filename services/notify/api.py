"""Notify's HTTP routes."""

from __future__ import annotations

from fastapi import APIRouter

from services.notify import NAME, handlers, runtime
from shared.auth import add_status_route

router = APIRouter(prefix="/api/v1", tags=["notify"])
add_status_route(router, NAME, runtime, handlers.stats)
