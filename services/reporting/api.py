"""Reporting's HTTP routes: live figures, scoped by the caller's token."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy import func, select

from services.reporting import (
    NAME,
    contents,
    figures,
    handlers,
    reports_api,
    runs,
    runtime,
    snapshots,
)
from services.reporting.models import MemberFact, MemberScope
from shared.auth import Principal, add_status_route, requires
from shared.http import NotFound
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


#: What a ranking may be by: the rates of :class:`figures.Figures`.
RankKey = Literal[
    "five_ones_rate",
    "dual_pairing_rate",
    "reported_in_rate",
    "dual_registration_rate",
    "wish_completion_rate",
    "cadre_rate",
]


@router.get("/summary/ranking")
def summary_ranking(
    response: Response,
    rt: Annotated[Runtime, Depends(runtime)],
    who: Annotated[Principal, Depends(reader)],
    scope: Annotated[str | None, Query()] = None,
    level: Annotated[Literal["district", "unit", "community"] | None, Query()] = None,
    by: RankKey = "five_ones_rate",
) -> dict[str, Any]:
    """The scopes one level below ``scope`` (default the caller's own), live, ranked by
    ``by`` as the reports rank them (best first, ties by code), with the laggards: below
    the reports' threshold (``REPORTING_LAGGARD_THRESHOLD``, 0.6). ``level``: the city's
    districts (default) or city-level units; a district's communities (default) or
    county-level units. A unit or a community has nothing below it (an empty ranking)."""
    response.headers["Cache-Control"] = "no-store"
    scope = scope or who.scope
    handlers.check_scope(scope)
    level = level or ("district" if scope == "city" else "community")
    with rt.read() as uow:
        if not handlers.visible(uow, who, scope):
            raise NotFound(f"no scope {scope}")
        ranked = figures.ranking(uow, figures.children(uow, scope, level), None, by)
    threshold = contents.laggard_threshold(rt.settings)
    rows = []
    for rank, found in ranked:
        value = contents.rate(found, by)
        laggard = value is not None and value < threshold
        rows.append({"rank": rank, "value": value, "laggard": laggard, **found.as_dict()})
    return {
        "scope": scope,
        "level": level,
        "by": by,
        "threshold": threshold,
        "ranked": rows,
        "laggards": [row["scope"] for row in rows if row["laggard"]],
    }


@router.get("/summary/members")
def summary_members(
    response: Response,
    rt: Annotated[Runtime, Depends(runtime)],
    who: Annotated[Principal, Depends(reader)],
    scope: Annotated[str | None, Query()] = None,
    member_id: Annotated[list[uuid.UUID] | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[dict[str, Any]]:
    """The members counting in ``scope`` now, as reporting knows them: id, masked name
    (张*), unit, leading cadre — the names pages put next to other services' member ids.
    ``member_id`` (repeated, at most 200) picks those; otherwise by id, paged, with
    ``X-Total-Count``."""
    response.headers["Cache-Control"] = "no-store"
    scope = scope or who.scope
    handlers.check_scope(scope)
    query = (
        select(MemberFact)
        .join(MemberScope, MemberScope.member_id == MemberFact.member_id)
        .where(MemberScope.scope == scope, MemberScope.valid_to.is_(None))
    )
    if member_id:
        query = query.where(MemberFact.member_id.in_(member_id))
    with rt.read() as uow:
        if not handlers.visible(uow, who, scope):
            raise NotFound(f"no scope {scope}")
        total = uow.session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = uow.session.scalars(query.order_by(MemberFact.member_id).limit(limit).offset(offset))
        response.headers["X-Total-Count"] = str(total)
        return [
            {
                "member_id": str(m.member_id),
                "name": m.name_masked,
                "unit_code": m.unit_code,
                "is_leader_cadre": m.is_leader_cadre,
            }
            for m in rows
        ]


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
