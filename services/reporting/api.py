"""Reporting's HTTP routes: live figures, scoped by the caller's token."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from services.reporting import NAME, handlers, reports_api, runs, runtime, snapshots
from shared.auth import Principal, add_status_route, requires
from shared.runtime import Runtime

router = APIRouter(prefix="/api/v1", tags=["reporting"])
add_status_route(router, NAME, runtime, handlers.stats)
reader = requires(runtime, "admin", "operator", "leader", "unit", "community")


@router.get("/summary")
def summary(
    response: Response,
    rt: Annotated[Runtime, Depends(runtime)],
    who: Annotated[Principal, Depends(reader)],
    scope: Annotated[str | None, Query()] = None,
) -> dict[str, Any]:
    """Live figures for ``scope`` (city, district:CODE, unit:CODE, community:CODE); by
    default the caller's own."""
    response.headers["Cache-Control"] = "no-store"
    with rt.read() as uow:
        return handlers.summary(scope or who.scope, who, uow)


@router.post("/ops/reporting/tick", tags=["ops"])
def tick_now(
    rt: Annotated[Runtime, Depends(runtime)],
    _who: Annotated[Principal, Depends(requires(runtime, "admin", "operator"))],
) -> dict[str, int]:
    """Run reporting's sweeps now, as the scheduler would: the daily snapshots of finished
    days, then the subscriptions' due slots (their builds go to the Celery worker)."""
    written = snapshots.sweep(rt)
    return {"snapshots": written, **runs.tick(rt, "ops", runs.celery_enqueue(rt))}


router.include_router(reports_api.router)  # subscriptions and reports
