"""Reporting's read side: every query a ``GET`` route (and the CLI's progress bar) answers
with. Each view opens its own read unit of work and answers with the route's model; a scope
outside the caller's answers 404, as if it did not exist (:mod:`.access`)."""

from __future__ import annotations

import json
import uuid

from sqlalchemy import func, select

from services.reporting import contents, figures
from services.reporting.access import check_scope, visible
from services.reporting.models import (
    EventLogEntry,
    MemberFact,
    MemberScope,
    ReportRun,
    Subscription,
)
from services.reporting.schemas import (
    FiguresOut,
    Level,
    RankedOut,
    RankingOut,
    RankKey,
    ReportFileOut,
    ReportOut,
    SubscriptionOut,
    SummaryMemberOut,
)
from shared.auth import Principal
from shared.db import UnitOfWork, messaging_stats
from shared.http import NotFound
from shared.runtime import Runtime

# --- live figures ----------------------------------------------------------------------------


def summary(rt: Runtime, principal: Principal, scope: str) -> FiguresOut:
    """Live figures for ``scope``; outside the caller's scope it does not exist (404)."""
    check_scope(scope)
    with rt.read() as uow:
        if not visible(uow, principal, scope):
            raise NotFound(f"no scope {scope}")
        return FiguresOut.model_validate(figures.figures(uow, scope).as_dict())


def ranking(
    rt: Runtime, principal: Principal, scope: str, level: Level | None, by: RankKey
) -> RankingOut:
    """The scopes one level below ``scope``, live, ranked by ``by`` as the reports rank them
    (best first, ties by code), with the laggards: below the reports' threshold. ``level``
    defaults to the city's districts, or a district's communities."""
    check_scope(scope)
    level = level or ("district" if scope == "city" else "community")
    with rt.read() as uow:
        if not visible(uow, principal, scope):
            raise NotFound(f"no scope {scope}")
        ranked = figures.ranking(uow, figures.children(uow, scope, level), None, by)
    threshold = contents.laggard_threshold(rt.settings)
    rows = []
    for rank, found in ranked:
        value = contents.rate(found, by)
        laggard = value is not None and value < threshold
        rows.append(
            RankedOut.model_validate(
                {"rank": rank, "value": value, "laggard": laggard, **found.as_dict()}
            )
        )
    return RankingOut(
        scope=scope,
        level=level,
        by=by,
        threshold=threshold,
        ranked=rows,
        laggards=[row.scope for row in rows if row.laggard],
    )


def members(
    rt: Runtime,
    principal: Principal,
    scope: str,
    member_ids: list[uuid.UUID] | None,
    limit: int,
    offset: int,
) -> tuple[int, list[SummaryMemberOut]]:
    """The members counting in ``scope`` now (those of ``member_ids`` if given), by id,
    paged; with how many there are in all."""
    check_scope(scope)
    query = (
        select(MemberFact)
        .join(MemberScope, MemberScope.member_id == MemberFact.member_id)
        .where(MemberScope.scope == scope, MemberScope.valid_to.is_(None))
    )
    if member_ids:
        query = query.where(MemberFact.member_id.in_(member_ids))
    with rt.read() as uow:
        if not visible(uow, principal, scope):
            raise NotFound(f"no scope {scope}")
        total = uow.session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = uow.session.scalars(query.order_by(MemberFact.member_id).limit(limit).offset(offset))
        return total, [
            SummaryMemberOut(
                member_id=str(m.member_id),
                name=m.name_masked,
                unit_code=m.unit_code,
                is_leader_cadre=m.is_leader_cadre,
            )
            for m in rows
        ]


# --- subscriptions and reports ---------------------------------------------------------------


def subscription_out(sub: Subscription) -> SubscriptionOut:
    """A subscription as the API shows it (contact details masked)."""
    return SubscriptionOut(
        id=str(sub.id),
        state="active" if sub.active else "cancelled",
        scope=sub.scope,
        schedule=sub.schedule,
        channels=sub.channels.split(","),
        formats=sub.formats.split(","),
        name=sub.name_masked,
        email=sub.email_masked,
        phone=sub.phone_masked,
        created_at=sub.created_at.isoformat(),
    )


def subscriptions(rt: Runtime, principal: Principal) -> list[SubscriptionOut]:
    """The subscriptions to scopes ``principal`` may read, oldest first."""
    with rt.read() as uow:
        subs = uow.session.scalars(select(Subscription).order_by(Subscription.created_at))
        return [subscription_out(s) for s in subs if visible(uow, principal, s.scope)]


def report_out(run: ReportRun) -> ReportOut:
    """A report run with the links to its files."""
    files = json.loads(run.files or "[]")
    names = [f["path"].rsplit("/", 1)[-1] for f in files]
    return ReportOut(
        id=str(run.id),
        state=run.status,
        subscription_id=str(run.subscription_id) if run.subscription_id else None,
        scope=run.scope,
        period_start=run.period_start.isoformat(),
        period_end=run.period_end.isoformat(),
        attempts=run.attempts,
        headline=run.headline,
        files=[
            ReportFileOut(
                name=name,
                media_type=f["media_type"],
                url=f"/api/v1/reports/{run.id}/files/{name}",
            )
            for name, f in zip(names, files, strict=True)
        ],
    )


def reports(rt: Runtime, principal: Principal) -> list[ReportOut]:
    """The reports built so far (done or failed, newest first) in ``principal``'s scopes."""
    with rt.read() as uow:
        runs = uow.session.scalars(
            select(ReportRun)
            .where(ReportRun.status.in_(("done", "failed")))
            .order_by(ReportRun.period_end.desc(), ReportRun.id)
        ).all()
        return [report_out(r) for r in runs if visible(uow, principal, r.scope)]


# --- operators -------------------------------------------------------------------------------


def stats(uow: UnitOfWork) -> dict[str, int]:
    """The service's counts for ``GET /api/v1/ops/reporting``."""
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


def last_run(uow: UnitOfWork) -> dict[str, str | None] | None:
    """The newest report run (``servicemonth status``): when it was claimed and finished,
    its state and scope; None before the first."""
    run = uow.session.scalars(
        select(ReportRun).order_by(ReportRun.claimed_at.desc(), ReportRun.id).limit(1)
    ).first()
    if run is None:
        return None
    return {
        "id": str(run.id),
        "state": run.status,
        "scope": run.scope,
        "claimed_at": run.claimed_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }


def events_logged(rt: Runtime) -> int:
    """How many events the log holds (the length of a rebuild's progress bar)."""
    with rt.db.session() as session:
        return session.scalar(select(func.count()).select_from(EventLogEntry)) or 0
