"""Reporting's use cases behind the HTTP routes: live figures for a caller's scope."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from services.reporting import figures
from services.reporting.models import EventLogEntry, MemberScope, Place, ReportRun
from shared.auth import Principal, check_role_scope
from shared.config import CITY
from shared.db import UnitOfWork, messaging_stats
from shared.http import Invalid, NotFound


def check_scope(scope: str) -> None:
    """A scope figures are kept for: the ones a leader's token may take (shared.auth)."""
    try:
        check_role_scope("leader", scope)
    except ValueError:
        raise Invalid(
            "unknown scope",
            [{"field": "scope", "message": "use city, district:CODE, unit:CODE or community:CODE"}],
        ) from None


def district_of(uow: UnitOfWork, scope: str) -> str | None:
    """The district a unit or community scope lies in (a city-level unit: none)."""
    kind, _, code = scope.partition(":")
    if kind == "district":
        return code
    if kind == "community":
        return code[:6]
    place = uow.session.get(Place, scope)
    return place.district if place is not None and place.district != CITY else None


def visible(uow: UnitOfWork, principal: Principal, scope: str) -> bool:
    """May ``principal`` read ``scope``'s figures? The city sees all; a district its
    communities and county-level units; a unit or a community only itself
    (:meth:`shared.auth.Principal.covers`, given where ``scope`` lies)."""
    if scope == "city":
        return principal.kind == "city"
    kind, _, code = scope.partition(":")
    district = district_of(uow, scope)
    return principal.covers(
        districts=[district] if district else [],
        units=[code] if kind == "unit" else [],
        communities=[code] if kind == "community" else [],
    )


def summary(scope: str, principal: Principal, uow: UnitOfWork) -> dict[str, Any]:
    """Live figures for ``scope``; outside the caller's scope it does not exist (404)."""
    check_scope(scope)
    if not visible(uow, principal, scope):
        raise NotFound(f"no scope {scope}")
    return figures.figures(uow, scope).as_dict()


def stats(uow: UnitOfWork) -> dict[str, int]:
    members = (
        select(func.count())
        .select_from(MemberScope)
        .where(MemberScope.scope == "city", MemberScope.valid_to.is_(None))
    )
    logged = select(func.count()).select_from(EventLogEntry)
    working = select(func.count()).select_from(ReportRun).where(ReportRun.status == "working")
    return {
        "members": uow.session.scalar(members) or 0,
        "events_logged": uow.session.scalar(logged) or 0,
        "reports_working": uow.session.scalar(working) or 0,
        **messaging_stats(uow),
    }
