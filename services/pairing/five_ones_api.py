"""五个一 over HTTP: service records and their verification, team membership, each
member's progress, and the leading cadres' progress (领导干部带头) for staff and leaders."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from services.pairing import activities, runtime, teams
from services.pairing.models import MemberReplica, ServiceRecord, Team, TeamMembership
from shared.auth import Forbidden, Principal, requires
from shared.db import UnitOfWork
from shared.http import Invalid, NotFound
from shared.runtime import Runtime

router = APIRouter(tags=["five ones"])
Rt = Annotated[Runtime, Depends(runtime)]
STAFF = ("admin", "operator", "community")
Staff = Annotated[Principal, Depends(requires(runtime, *STAFF))]
Actor = Annotated[Principal, Depends(requires(runtime, *STAFF, "member"))]
Viewer = Annotated[Principal, Depends(requires(runtime, *STAFF, "member", "unit"))]
Watcher = Annotated[Principal, Depends(requires(runtime, *STAFF, "unit", "leader"))]


class RecordIn(BaseModel):
    """One of the five ones; give ``hours``, or ``start_time`` and ``end_time`` (or both)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    member_id: uuid.UUID
    kind: Literal["home_visit", "community_activity", "policy_talk", "wish", "team"]
    community_code: str = Field(pattern=r"^\d{12}$")
    date: dt.date
    hours: float | None = Field(default=None, gt=0, le=activities.MAX_HOURS)
    start_time: dt.time | None = None
    end_time: dt.time | None = None
    note: str | None = Field(default=None, max_length=1000)


class ReasonIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: str = Field(min_length=1, max_length=500)


class JoinIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    member_id: uuid.UUID


def _covers(principal: Principal, community_code: str) -> bool:
    return principal.covers(districts={community_code[:6]}, communities={community_code})


def _covers_member(principal: Principal, member: MemberReplica) -> bool:
    codes = {c["code"] for c in member.communities}
    return principal.covers(
        districts={c[:6] for c in codes},
        units={member.unit_code},
        communities=codes,
        member=str(member.id),
    )


def _acts_for(principal: Principal, member_id: uuid.UUID, community_code: str) -> bool:
    """Members act for themselves (403 otherwise); staff within their scope (404 outside)."""
    if principal.role == "member":
        if principal.code != str(member_id):
            raise Forbidden("a member may act only for themself")
        return False
    if not _covers(principal, community_code):
        raise NotFound(f"no community {community_code}")
    return True


# --- service records ---------------------------------------------------------------------


@router.post("/activities", status_code=201)
def record_activity(body: RecordIn, rt: Rt, principal: Actor) -> dict[str, Any]:
    """Record one of the five ones (submitted); staff of the community verify it."""
    _acts_for(principal, body.member_id, body.community_code)
    data = body.model_dump()
    data["day"], data["start"], data["end"] = (
        data.pop("date"),
        data.pop("start_time"),
        data.pop("end_time"),
    )
    with rt.uow() as uow:
        row = activities.submit(activities.RecordIn(**data), uow, rt.settings)
        uow.commit()
        return activities.record_view(row)


def _record(uow: UnitOfWork, record_id: uuid.UUID, principal: Principal) -> ServiceRecord:
    row = uow.session.get(ServiceRecord, record_id)
    visible = row is not None and (
        principal.code == str(row.member_id)
        if principal.role == "member"
        else _covers(principal, row.community_code)
    )
    if row is None or not visible:
        raise NotFound(f"no activity {record_id}")
    return row


@router.get("/activities")
def list_activities(
    rt: Rt,
    principal: Actor,
    response: Response,
    member_id: uuid.UUID | None = None,
    community_code: Annotated[str | None, Query(pattern=r"^\d{12}$")] = None,
    state: Literal["submitted", "verified", "returned"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[dict[str, Any]]:
    """Service records, newest day first: a member's own (``member_id``), or a community's
    for its staff (``community_code``, e.g. ``state=submitted``: the records to verify).
    ``X-Total-Count`` says how many match."""
    query = select(ServiceRecord)
    if principal.role == "member":
        if member_id is not None and str(member_id) != principal.code:
            raise Forbidden("a member may read only their own records")
        query = query.where(ServiceRecord.member_id == uuid.UUID(principal.code))
    elif community_code is None:
        raise Invalid("say which community", [{"field": "community_code", "message": "required"}])
    elif not _covers(principal, community_code):
        raise NotFound(f"no community {community_code}")
    elif member_id is not None:
        query = query.where(ServiceRecord.member_id == member_id)
    if community_code is not None:
        query = query.where(ServiceRecord.community_code == community_code)
    if state is not None:
        query = query.where(ServiceRecord.state == state)
    with rt.read() as uow:
        total = uow.session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = uow.session.scalars(
            query.order_by(ServiceRecord.day.desc(), ServiceRecord.id).limit(limit).offset(offset)
        )
        response.headers["X-Total-Count"] = str(total)
        return [activities.record_view(row) for row in rows]


@router.get("/activities/{record_id}")
def read_activity(record_id: uuid.UUID, rt: Rt, principal: Actor) -> dict[str, Any]:
    with rt.read() as uow:
        return activities.record_view(_record(uow, record_id, principal))


@router.post("/activities/{record_id}/verify")
def verify_activity(record_id: uuid.UUID, rt: Rt, principal: Staff) -> dict[str, Any]:
    """核实 — community staff confirm the service took place; now it counts."""
    with rt.uow() as uow:
        row = _record(uow, record_id, principal)
        activities.move(row, "verified", uow)
        uow.commit()
        return activities.record_view(row)


@router.post("/activities/{record_id}/return")
def return_activity(
    record_id: uuid.UUID, body: ReasonIn, rt: Rt, principal: Staff
) -> dict[str, Any]:
    """退回 — not accepted, with the reason; the member records it again if need be."""
    with rt.uow() as uow:
        row = _record(uow, record_id, principal)
        activities.move(row, "returned", uow, body.reason)
        uow.commit()
        return activities.record_view(row)


# --- team membership ---------------------------------------------------------------------


def _team(uow: UnitOfWork, team_id: uuid.UUID, principal: Principal) -> Team:
    team = uow.session.get(Team, team_id)
    if team is None or (principal.role != "member" and not _covers(principal, team.community_code)):
        raise NotFound(f"no team {team_id}")
    return team


@router.post("/teams/{team_id}/members", status_code=201)
def join_team(team_id: uuid.UUID, body: JoinIn, rt: Rt, principal: Actor) -> dict[str, Any]:
    """A member asks to join (requested); staff adding a member confirm at once."""
    with rt.uow() as uow:
        team = _team(uow, team_id, principal)
        by_staff = _acts_for(principal, body.member_id, team.community_code)
        row = teams.join(team, body.member_id, uow, confirmed=by_staff)
        uow.commit()
        return teams.membership_view(team, row)


def _membership(
    uow: UnitOfWork, team_id: uuid.UUID, member_id: uuid.UUID, principal: Principal
) -> tuple[Team, TeamMembership]:
    team = _team(uow, team_id, principal)
    _acts_for(principal, member_id, team.community_code)
    row = teams.membership(uow, team, member_id)
    if row is None:
        raise NotFound(f"member {member_id} has not asked to join team {team_id}")
    return team, row


@router.post("/teams/{team_id}/members/{member_id}/confirm")
def confirm_team_member(
    team_id: uuid.UUID, member_id: uuid.UUID, rt: Rt, principal: Staff
) -> dict[str, Any]:
    """Staff confirm a join request; the member's team item of the five ones is filled."""
    with rt.uow() as uow:
        team, row = _membership(uow, team_id, member_id, principal)
        teams.move(team, row, "confirmed", uow)
        uow.commit()
        return teams.membership_view(team, row)


@router.delete("/teams/{team_id}/members/{member_id}")
def leave_team(
    team_id: uuid.UUID, member_id: uuid.UUID, rt: Rt, principal: Actor
) -> dict[str, Any]:
    """The member leaves (or withdraws the request); staff may remove them."""
    with rt.uow() as uow:
        team, row = _membership(uow, team_id, member_id, principal)
        teams.move(team, row, "left", uow)
        uow.commit()
        return teams.membership_view(team, row)


@router.get("/teams/{team_id}/members")
def team_members(team_id: uuid.UUID, rt: Rt, principal: Staff) -> list[dict[str, Any]]:
    with rt.read() as uow:
        team = _team(uow, team_id, principal)
        rows = uow.session.scalars(
            select(TeamMembership)
            .where(TeamMembership.team_id == team.id)
            .order_by(TeamMembership.created_at)
        )
        return [teams.membership_view(team, r) for r in rows]


# --- progress ----------------------------------------------------------------------------


@router.get("/members/{member_id}/progress")
def member_progress(member_id: uuid.UUID, rt: Rt, principal: Viewer) -> dict[str, Any]:
    """五个一 — the five items (verified records only), hours, and what is missing."""
    with rt.read() as uow:
        member = uow.session.get(MemberReplica, member_id)
        if member is None or not _covers_member(principal, member):
            raise NotFound(f"no member {member_id}")
        done = activities.progress(uow, [member_id])[member_id]
        return {"member_id": str(member_id), **done.view()}


def _cadres_view(uow: UnitOfWork, scope: str, cadres: list[MemberReplica]) -> dict[str, Any]:
    figures = activities.progress(uow, [m.id for m in cadres])
    rows = [
        {"member_id": str(m.id), "unit_code": m.unit_code, **figures[m.id].view()} for m in cadres
    ]
    return {
        "scope": scope,
        "leading_cadres": len(rows),
        "active": sum(1 for m in cadres if figures[m.id].done),
        "complete": sum(1 for m in cadres if figures[m.id].complete),
        "members": rows,
    }


@router.get("/communities/{code}/leading-cadres/progress")
def community_cadres(
    rt: Rt, principal: Watcher, code: Annotated[str, Path(pattern=r"^\d{12}$")]
) -> dict[str, Any]:
    """县处级以上领导干部 registered (confirmed) in the community, and their five ones."""
    if principal.role == "unit" or not _covers(principal, code):
        raise NotFound(f"no community {code}")
    with rt.read() as uow:
        cadres = [
            m
            for m in uow.session.scalars(
                select(MemberReplica).where(MemberReplica.is_leader_cadre.is_(True))
            )
            if code in activities.confirmed_communities(m)
        ]
        return _cadres_view(uow, f"community:{code}", sorted(cadres, key=lambda m: str(m.id)))


@router.get("/units/{code}/leading-cadres/progress")
def unit_cadres(
    rt: Rt, principal: Watcher, code: Annotated[str, Path(max_length=40)]
) -> dict[str, Any]:
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
            if _covers_member(principal, m)
        ]
        return _cadres_view(uow, f"unit:{code}", cadres)


# --- a unit's members ----------------------------------------------------------------------

UnitReader = Annotated[Principal, Depends(requires(runtime, "admin", "operator", "unit", "leader"))]


@router.get("/units/{code}/progress")
def unit_progress(
    rt: Rt,
    principal: UnitReader,
    response: Response,
    code: Annotated[str, Path(max_length=40)],
    complete: Annotated[bool | None, Query(description="false: only those behind")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[dict[str, Any]]:
    """The unit's members and their five ones, by member id; ``complete=false`` lists those
    behind. A unit reads its own; an operator or a leader the members registered in their
    scope (as the leading cadres' view). ``X-Total-Count`` says how many match."""
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
            if _covers_member(principal, m)
        ]
        figures = activities.progress(uow, [m.id for m in members])
        if complete is not None:
            members = [m for m in members if figures[m.id].complete is complete]
        response.headers["X-Total-Count"] = str(len(members))
        return [
            {
                "member_id": str(m.id),
                "is_leader_cadre": m.is_leader_cadre,
                "reported_in": bool(activities.confirmed_communities(m)),
                **figures[m.id].view(),
            }
            for m in members[offset : offset + limit]
        ]
