"""Reporting's HTTP routes: who may call, the request turned into a view call (live
figures, scoped by the caller's token) or a command for the bus, the answer's model.
Subscriptions and reports are in :mod:`.reports_api`, gathered into this router."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from services.reporting import NAME, reports_api, views
from services.reporting.bootstrap import bus, runtime
from services.reporting.commands import SubscriptionTick, TakeSnapshots
from services.reporting.schemas import (
    FiguresOut,
    Level,
    RankingOut,
    RankKey,
    SummaryMemberOut,
    TickOut,
)
from shared.auth import Principal, add_status_route, requires
from shared.messagebus import MessageBus
from shared.runtime import Runtime

router = APIRouter(prefix="/api/v1", tags=["reporting"])
add_status_route(router, NAME, runtime, views.stats)
Bus = Annotated[MessageBus[Runtime], Depends(bus)]
Rt = Annotated[Runtime, Depends(runtime)]
Reader = Annotated[
    Principal, Depends(requires(runtime, "admin", "operator", "leader", "unit", "community"))
]
Operator = Annotated[Principal, Depends(requires(runtime, "admin", "operator"))]


@router.get("/summary")
def summary(
    response: Response,
    rt: Rt,
    who: Reader,
    scope: Annotated[str | None, Query()] = None,
) -> FiguresOut:
    """Live figures for ``scope`` (city, district:CODE, unit:CODE, community:CODE); by
    default the caller's own."""
    response.headers["Cache-Control"] = "no-store"
    return views.summary(rt, who, scope or who.scope)


@router.get("/summary/ranking")
def summary_ranking(
    response: Response,
    rt: Rt,
    who: Reader,
    scope: Annotated[str | None, Query()] = None,
    level: Annotated[Level | None, Query()] = None,
    by: RankKey = "five_ones_rate",
) -> RankingOut:
    """The scopes one level below ``scope`` (default the caller's own), live, ranked by
    ``by`` as the reports rank them (best first, ties by code), with the laggards: below
    the reports' threshold (``REPORTING_LAGGARD_THRESHOLD``, 0.6). ``level``: the city's
    districts (default) or city-level units; a district's communities (default) or
    county-level units. A unit or a community has nothing below it (an empty ranking)."""
    response.headers["Cache-Control"] = "no-store"
    return views.ranking(rt, who, scope or who.scope, level, by)


@router.get("/summary/members")
def summary_members(
    response: Response,
    rt: Rt,
    who: Reader,
    scope: Annotated[str | None, Query()] = None,
    member_id: Annotated[list[uuid.UUID] | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[SummaryMemberOut]:
    """The members counting in ``scope`` now, as reporting knows them: id, masked name
    (张*), unit, leading cadre — the names pages put next to other services' member ids.
    ``member_id`` (repeated, at most 200) picks those; otherwise by id, paged, with
    ``X-Total-Count``."""
    response.headers["Cache-Control"] = "no-store"
    total, rows = views.members(rt, who, scope or who.scope, member_id, limit, offset)
    response.headers["X-Total-Count"] = str(total)
    return rows


@router.post(
    "/ops/reporting/tick",
    tags=["ops"],
    response_model=TickOut,
    response_model_exclude_defaults=True,
)
def tick_now(bus: Bus, _who: Operator) -> TickOut:
    """Run reporting's sweeps now, as the scheduler would: the daily snapshots of finished
    days, then the subscriptions' due slots (their builds go to the Celery worker)."""
    written = bus.handle(TakeSnapshots())
    return TickOut(snapshots=written, **bus.handle(SubscriptionTick(holder="ops")))


router.include_router(reports_api.router)  # subscriptions and reports
