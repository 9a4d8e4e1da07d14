"""Pairing's read side: every query a GET route answers, and the answers the commands give
back, as the models of :mod:`services.pairing.schemas`. Reads take a read-only unit of work
(on SQLite they never wait for a writer)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select

from services.pairing import activities, report, teams, wishes
from services.pairing.access import covers, covers_member, open_community
from services.pairing.models import (
    MemberReplica,
    Need,
    Pairing,
    PairingRun,
    Project,
    ServiceRecord,
    ServiceTarget,
    Team,
    TeamMembership,
    Wish,
    WishClaim,
)
from services.pairing.needs import paired_counts
from services.pairing.pairings import Scope, limits_from
from services.pairing.schemas import (
    CadreProgressOut,
    CadresOut,
    ClaimOut,
    MemberPairingsOut,
    MemberProgressOut,
    MembershipOut,
    NeedOut,
    PairingOut,
    PairingReportOut,
    PairingRunOut,
    ProjectOut,
    RecommendedWishOut,
    RecordOut,
    RunOut,
    TargetOut,
    TeamOut,
    UnitMemberProgressOut,
    WishMatch,
    WishOut,
)
from shared.auth import Forbidden, Principal
from shared.config import CAMPAIGN_TZ
from shared.db import UnitOfWork, messaging_stats
from shared.http import Invalid, NotFound
from shared.runtime import Runtime

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list, and how many items match in all (``X-Total-Count``)."""

    total: int
    items: list[T]


def _count(uow: UnitOfWork, query: Select[Any]) -> int:
    return uow.session.scalar(select(func.count()).select_from(query.subquery())) or 0


def stats(uow: UnitOfWork) -> dict[str, int]:
    """The service's counts for ``GET /api/v1/ops/pairing``."""
    return {
        "members": uow.session.scalar(select(func.count()).select_from(MemberReplica)) or 0,
        **messaging_stats(uow),
    }


# --- 微心愿 ------------------------------------------------------------------------------------


def wish_out(wish: Wish, last: WishClaim | None, principal: Principal) -> WishOut:
    """A wish with its latest claim; a member sees who claimed it only when it was them."""
    mine = last is not None and principal.scope == f"member:{last.member_id}"
    claim = None
    if last is not None:
        claim = ClaimOut(
            id=last.id,
            state=last.state,
            member_id=last.member_id if principal.role != "member" or mine else None,
            claimed_at=last.claimed_at.isoformat(),
            expires_at=last.expires_at.isoformat(),
            closed_at=last.closed_at.isoformat() if last.closed_at else None,
        )
    return WishOut(
        id=wish.id,
        state=wish.state,
        community_code=wish.community_code,
        title=wish.title,
        description=wish.description,
        category=wish.category,
        beneficiary_category=wish.beneficiary_category,
        deadline=wish.deadline,
        reason=wish.reason,
        rating=wish.rating,
        claim=claim,
    )


def wish_now(uow: UnitOfWork, wish: Wish, principal: Principal) -> WishOut:
    """The wish as it stands in ``uow``, with its latest claim."""
    return wish_out(wish, wishes.latest_claim(wish, uow), principal)


def list_wishes(
    rt: Runtime,
    principal: Principal,
    community_code: str | None,
    state: str | None,
    limit: int,
    offset: int,
) -> Page[WishOut]:
    """Wishes of a community (or of the caller's scope), newest first; members see only
    those that have been published."""
    query = select(Wish)
    if community_code is not None:
        if principal.role != "member" and not covers(principal, community_code):
            raise NotFound(f"no community {community_code}")
        query = query.where(Wish.community_code == community_code)
    elif principal.kind in ("district", "community"):
        query = query.where(Wish.community_code.startswith(principal.code))
    if principal.role == "member":
        query = query.where(Wish.state.in_(wishes.PUBLIC))
    if state is not None:
        query = query.where(Wish.state == state)
    with rt.read() as uow:
        total = _count(uow, query)
        rows = uow.session.scalars(
            query.order_by(Wish.created_at.desc(), Wish.id).limit(limit).offset(offset)
        ).all()
        latest: dict[uuid.UUID, WishClaim] = {}
        claims = select(WishClaim).where(WishClaim.wish_id.in_([w.id for w in rows]))
        for c in uow.session.scalars(claims.order_by(WishClaim.claimed_at)):
            latest[c.wish_id] = c
        return Page(total, [wish_out(w, latest.get(w.id), principal) for w in rows])


def read_wish(rt: Runtime, wish_id: uuid.UUID, principal: Principal) -> WishOut:
    with rt.read() as uow:
        return wish_now(uow, wishes.find(uow, wish_id, principal), principal)


def recommended_wishes(
    rt: Runtime, member_id: uuid.UUID, principal: Principal, limit: int
) -> list[RecommendedWishOut]:
    """Published wishes the member may claim, best match first, with why they match."""
    with rt.read() as uow:
        member = uow.session.get(MemberReplica, member_id)
        if member is None or not covers_member(principal, member):
            raise NotFound(f"no member {member_id}")
        return [
            RecommendedWishOut(
                **dict(wish_out(r.wish, None, principal)),
                score=r.score,
                match=WishMatch(skill=r.skill, community=r.community, days_left=r.days_left),
            )
            for r in wishes.recommend(uow, member, limit)
        ]


# --- 五个一: service records -------------------------------------------------------------------


def _local(moment: datetime | None) -> str | None:
    return moment.astimezone(CAMPAIGN_TZ).strftime("%H:%M") if moment else None


def record_out(row: ServiceRecord) -> RecordOut:
    return RecordOut(
        id=row.id,
        state=row.state,
        member_id=row.member_id,
        kind=row.kind,
        community_code=row.community_code,
        date=row.day,
        hours=row.hours,
        start_time=_local(row.starts_at),
        end_time=_local(row.ends_at),
        note=row.note,
        source=row.source,
        reason=row.reason,
    )


def list_activities(
    rt: Runtime,
    principal: Principal,
    member_id: uuid.UUID | None,
    community_code: str | None,
    state: str | None,
    limit: int,
    offset: int,
) -> Page[RecordOut]:
    """Service records, newest day first: a member's own, or a community's for its staff
    (who must say which community)."""
    query = select(ServiceRecord)
    if principal.role == "member":
        if member_id is not None and str(member_id) != principal.code:
            raise Forbidden("a member may read only their own records")
        query = query.where(ServiceRecord.member_id == uuid.UUID(principal.code))
    elif community_code is None:
        raise Invalid("say which community", [{"field": "community_code", "message": "required"}])
    elif not covers(principal, community_code):
        raise NotFound(f"no community {community_code}")
    elif member_id is not None:
        query = query.where(ServiceRecord.member_id == member_id)
    if community_code is not None:
        query = query.where(ServiceRecord.community_code == community_code)
    if state is not None:
        query = query.where(ServiceRecord.state == state)
    with rt.read() as uow:
        total = _count(uow, query)
        rows = uow.session.scalars(
            query.order_by(ServiceRecord.day.desc(), ServiceRecord.id).limit(limit).offset(offset)
        )
        return Page(total, [record_out(row) for row in rows])


def read_activity(rt: Runtime, record_id: uuid.UUID, principal: Principal) -> RecordOut:
    with rt.read() as uow:
        return record_out(activities.find(uow, record_id, principal))


# --- 五个一: teams and progress ----------------------------------------------------------------


def membership_out(team: Team, row: TeamMembership) -> MembershipOut:
    return MembershipOut(
        id=row.id,
        state=row.state,
        team_id=team.id,
        team_name=team.name,
        community_code=team.community_code,
        member_id=row.member_id,
    )


def team_members(rt: Runtime, team_id: uuid.UUID, principal: Principal) -> list[MembershipOut]:
    with rt.read() as uow:
        team = teams.find(uow, team_id, principal)
        rows = uow.session.scalars(
            select(TeamMembership)
            .where(TeamMembership.team_id == team.id)
            .order_by(TeamMembership.created_at)
        )
        return [membership_out(team, r) for r in rows]


def member_progress(rt: Runtime, member_id: uuid.UUID, principal: Principal) -> MemberProgressOut:
    """五个一 — the five items (verified records only), hours, and what is missing."""
    with rt.read() as uow:
        member = uow.session.get(MemberReplica, member_id)
        if member is None or not covers_member(principal, member):
            raise NotFound(f"no member {member_id}")
        done = activities.progress(uow, [member_id])[member_id]
        return MemberProgressOut(member_id=member_id, **done.view())


def _cadres(uow: UnitOfWork, scope: str, cadres: Sequence[MemberReplica]) -> CadresOut:
    figures = activities.progress(uow, [m.id for m in cadres])
    rows = [
        CadreProgressOut(member_id=m.id, unit_code=m.unit_code, **figures[m.id].view())
        for m in cadres
    ]
    return CadresOut(
        scope=scope,
        leading_cadres=len(rows),
        active=sum(1 for m in cadres if figures[m.id].done),
        complete=sum(1 for m in cadres if figures[m.id].complete),
        members=rows,
    )


def community_cadres(rt: Runtime, code: str, principal: Principal) -> CadresOut:
    """县处级以上领导干部 registered (confirmed) in the community, and their five ones."""
    if principal.role == "unit" or not covers(principal, code):
        raise NotFound(f"no community {code}")
    with rt.read() as uow:
        cadres = [
            m
            for m in uow.session.scalars(
                select(MemberReplica).where(MemberReplica.is_leader_cadre.is_(True))
            )
            if code in activities.confirmed_communities(m)
        ]
        return _cadres(uow, f"community:{code}", sorted(cadres, key=lambda m: str(m.id)))


def unit_cadres(rt: Runtime, code: str, principal: Principal) -> CadresOut:
    """The unit's leading cadres and their five ones (an operator or a community sees those
    registered in its own district or community)."""
    if principal.kind == "unit" and principal.code != code:
        raise NotFound(f"no unit {code}")
    with rt.read() as uow:
        cadres = [
            m
            for m in uow.session.scalars(
                select(MemberReplica)
                .where(MemberReplica.unit_code == code, MemberReplica.is_leader_cadre.is_(True))
                .order_by(MemberReplica.id)
            )
            if covers_member(principal, m)
        ]
        return _cadres(uow, f"unit:{code}", cadres)


def unit_progress(
    rt: Runtime,
    code: str,
    principal: Principal,
    complete: bool | None,
    limit: int,
    offset: int,
) -> Page[UnitMemberProgressOut]:
    """The unit's members (those in the caller's sight) and their five ones, by member id;
    ``complete=False`` keeps those behind."""
    if principal.kind == "unit" and principal.code != code:
        raise NotFound(f"no unit {code}")
    with rt.read() as uow:
        members = [
            m
            for m in uow.session.scalars(
                select(MemberReplica)
                .where(MemberReplica.unit_code == code)
                .order_by(MemberReplica.id)
            )
            if covers_member(principal, m)
        ]
        figures = activities.progress(uow, [m.id for m in members])
        if complete is not None:
            members = [m for m in members if figures[m.id].complete is complete]
        return Page(
            len(members),
            [
                UnitMemberProgressOut(
                    member_id=m.id,
                    is_leader_cadre=m.is_leader_cadre,
                    reported_in=bool(activities.confirmed_communities(m)),
                    **figures[m.id].view(),
                )
                for m in members[offset : offset + limit]
            ],
        )


# --- 双对接: what a community published --------------------------------------------------------


def target_out(t: ServiceTarget) -> TargetOut:
    return TargetOut.model_validate(t)


def need_out(n: Need, paired: int = 0) -> NeedOut:
    return NeedOut(
        id=n.id,
        community_code=n.community_code,
        created_at=n.created_at.isoformat(),
        state=n.state,
        title=n.title,
        required_skill=n.required_skill,
        category=n.category,
        volunteers_needed=n.volunteers_needed,
        availability=n.availability,
        window_start=n.window_start,
        window_end=n.window_end,
        target_id=n.target_id,
        paired=paired,
        open_places=max(0, n.volunteers_needed - paired),
    )


def project_out(p: Project, paired: int = 0) -> ProjectOut:
    return ProjectOut(
        id=p.id,
        community_code=p.community_code,
        created_at=p.created_at.isoformat(),
        state=p.state,
        kind=p.kind,
        title=p.title,
        required_skill=p.required_skill,
        schedule=p.schedule,
        availability=p.availability,
        capacity=p.capacity,
        paired=paired,
        open_places=max(0, p.capacity - paired),
    )


def team_out(t: Team) -> TeamOut:
    return TeamOut.model_validate(t)


def list_targets(rt: Runtime, code: str, who: Principal) -> list[TargetOut]:
    with rt.read() as uow:
        open_community(uow, code, who)
        query = select(ServiceTarget).where(ServiceTarget.community_code == code)
        return [
            target_out(t) for t in uow.session.scalars(query.order_by(ServiceTarget.created_at))
        ]


def list_needs(rt: Runtime, code: str, who: Principal) -> list[NeedOut]:
    with rt.read() as uow:
        open_community(uow, code, who)
        paired = paired_counts(uow, Pairing.need_id, code)
        query = select(Need).where(Need.community_code == code).order_by(Need.created_at)
        return [need_out(n, paired.get(n.id, 0)) for n in uow.session.scalars(query)]


def list_projects(rt: Runtime, code: str, who: Principal) -> list[ProjectOut]:
    with rt.read() as uow:
        open_community(uow, code, who)
        paired = paired_counts(uow, Pairing.project_id, code)
        query = select(Project).where(Project.community_code == code).order_by(Project.created_at)
        return [project_out(p, paired.get(p.id, 0)) for p in uow.session.scalars(query)]


def list_teams(rt: Runtime, code: str, who: Principal) -> list[TeamOut]:
    with rt.read() as uow:
        open_community(uow, code, who)
        query = select(Team).where(Team.community_code == code).order_by(Team.created_at)
        return [team_out(t) for t in uow.session.scalars(query)]


# --- 双对接: pairings and the report ---------------------------------------------------------


def pairing_out(p: Pairing) -> PairingOut:
    subject_id = p.need_id or p.project_id
    assert subject_id is not None  # a pairing is with a need or with a project
    return PairingOut(
        id=p.id,
        member_id=p.member_id,
        kind=p.kind,
        subject_id=subject_id,
        need_id=p.need_id,
        project_id=p.project_id,
        title=p.reason.get("title", ""),
        community_code=p.community_code,
        score=p.score,
        reason=p.reason,
        source=p.source,
        state=p.state,
        run_id=p.run_id,
        created_at=p.created_at.isoformat(),
        updated_at=p.updated_at.isoformat() if p.updated_at else None,
    )


def member_pairings(rt: Runtime, member_id: uuid.UUID, who: Principal) -> MemberPairingsOut:
    """The member's pairings that ``who`` may see (staff: those of their community)."""
    mine = str(member_id)
    with rt.read() as uow:
        replica = uow.session.get(MemberReplica, member_id)
        codes = {c["code"] for c in replica.communities} if replica else set()
        if replica is None or not who.covers(
            districts={c[:6] for c in codes}, communities=codes, member=mine
        ):
            raise NotFound(f"no member {member_id}")
        query = select(Pairing).where(Pairing.member_id == member_id).order_by(Pairing.created_at)
        rows = [
            p
            for p in uow.session.scalars(query)
            if who.covers(
                districts={p.community_code[:6]}, communities={p.community_code}, member=mine
            )
        ]
        active = {p.kind for p in rows if p.state == "active"}
        return MemberPairingsOut(
            member_id=member_id,
            dual_paired=active == {"need", "project"},
            pairings=[pairing_out(p) for p in rows],
        )


def pairing_report(rt: Runtime, code: str, who: Principal) -> PairingReportOut:
    """Who is not yet 双对接 and why; which needs and projects have open places and why."""
    with rt.read() as uow:
        open_community(uow, code, who)
        figures = report.community_report(uow, code, limits_from(rt.settings))
        return PairingReportOut.model_validate(figures)


def run_out(job: PairingRun) -> PairingRunOut:
    return PairingRunOut(
        id=job.id,
        scope=job.scope,
        state=job.state,
        phase=job.phase,
        progress=dict(job.progress or {}),
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        error=job.error,
        result=RunOut.model_validate(job.summary) if job.summary else None,
    )


def pairing_run(rt: Runtime, run_id: uuid.UUID, who: Principal) -> PairingRunOut:
    """A run and how far it got; one whose scope the caller may not run is absent (404)."""
    with rt.read() as uow:
        job = uow.session.get(PairingRun, run_id)
        if job is None or not Scope.parse(job.scope).allows(who):
            raise NotFound(f"no pairing run {run_id}")
        return run_out(job)
