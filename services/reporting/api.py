"""Reporting's HTTP routes: live figures."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from services.reporting import NAME, handlers, runtime
from shared.auth import add_status_route
from shared.runtime import Runtime

router = APIRouter(prefix="/api/v1", tags=["reporting"])
add_status_route(router, NAME, runtime, handlers.stats)


@router.get("/summary")
def summary(
    rt: Annotated[Runtime, Depends(runtime)], scope: Annotated[str, Query()] = "city"
) -> dict[str, Any]:
    with rt.uow() as uow:
        return handlers.summary(scope, uow)
