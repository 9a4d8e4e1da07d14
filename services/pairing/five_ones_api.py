"""五个一 over HTTP: service records and their verification, team membership, each
member's progress, and the leading cadres' progress (领导干部带头) for staff and leaders.
Routes check the caller's role, hand a command to the bus or read a view."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Response

from services.pairing import bootstrap, views
from services.pairing.commands import (
    ConfirmTeamMember,
    JoinTeam,
    LeaveTeam,
    RecordActivity,
    ReturnActivity,
    VerifyActivity,
)
from services.pairing.schemas import (
    CadresOut,
    JoinIn,
    MemberProgressOut,
    MembershipOut,
    ReasonIn,
    RecordIn,
    RecordOut,
    UnitMemberProgressOut,
)
from shared.auth import Principal, requires
from shared.messagebus import MessageBus
from shared.runtime import Runtime

router = APIRouter(tags=["five ones"])
runtime = bootstrap.runtime
Rt = Annotated[Runtime, Depends(runtime)]
Bus = Annotated[MessageBus[Runtime], Depends(bootstrap.bus)]
STAFF = ("admin", "operator", "community")
Staff = Annotated[Principal, Depends(requires(runtime, *STAFF))]
Actor = Annotated[Principal, Depends(requires(runtime, *STAFF, "member"))]
Viewer = Annotated[Principal, Depends(requires(runtime, *STAFF, "member", "unit"))]
Watcher = Annotated[Principal, Depends(requires(runtime, *STAFF, "unit", "leader"))]
UnitReader = Annotated[Principal, Depends(requires(runtime, "admin", "operator", "unit", "leader"))]


# --- service records ---------------------------------------------------------------------


@router.post("/activities", status_code=201)
def record_activity(body: RecordIn, bus: Bus, principal: Actor) -> RecordOut:
    """Record one of the five ones (submitted); staff of the community verify it."""
    command = RecordActivity(
        principal=principal,
        member_id=body.member_id,
        kind=body.kind,
        community_code=body.community_code,
        day=body.date,
        hours=body.hours,
        start=body.start_time,
        end=body.end_time,
        note=body.note,
    )
    return bus.handle(command)


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
) -> list[RecordOut]:
    """Service records, newest day first: a member's own (``member_id``), or a community's
    for its staff (``community_code``, e.g. ``state=submitted``: the records to verify).
    ``X-Total-Count`` says how many match."""
    page = views.list_activities(rt, principal, member_id, community_code, state, limit, offset)
    response.headers["X-Total-Count"] = str(page.total)
    return page.items


@router.get("/activities/{record_id}")
def read_activity(record_id: uuid.UUID, rt: Rt, principal: Actor) -> RecordOut:
    return views.read_activity(rt, record_id, principal)


@router.post("/activities/{record_id}/verify")
def verify_activity(record_id: uuid.UUID, bus: Bus, principal: Staff) -> RecordOut:
    """核实 — community staff confirm the service took place; now it counts."""
    return bus.handle(VerifyActivity(principal=principal, record_id=record_id))


@router.post("/activities/{record_id}/return")
def return_activity(record_id: uuid.UUID, body: ReasonIn, bus: Bus, principal: Staff) -> RecordOut:
    """退回 — not accepted, with the reason; the member records it again if need be."""
    command = ReturnActivity(principal=principal, record_id=record_id, reason=body.reason)
    return bus.handle(command)


# --- team membership ---------------------------------------------------------------------


@router.post("/teams/{team_id}/members", status_code=201)
def join_team(team_id: uuid.UUID, body: JoinIn, bus: Bus, principal: Actor) -> MembershipOut:
    """A member asks to join (requested); staff adding a member confirm at once."""
    return bus.handle(JoinTeam(principal=principal, team_id=team_id, member_id=body.member_id))


@router.post("/teams/{team_id}/members/{member_id}/confirm")
def confirm_team_member(
    team_id: uuid.UUID, member_id: uuid.UUID, bus: Bus, principal: Staff
) -> MembershipOut:
    """Staff confirm a join request; the member's team item of the five ones is filled."""
    command = ConfirmTeamMember(principal=principal, team_id=team_id, member_id=member_id)
    return bus.handle(command)


@router.delete("/teams/{team_id}/members/{member_id}")
def leave_team(
    team_id: uuid.UUID, member_id: uuid.UUID, bus: Bus, principal: Actor
) -> MembershipOut:
    """The member leaves (or withdraws the request); staff may remove them."""
    return bus.handle(LeaveTeam(principal=principal, team_id=team_id, member_id=member_id))


@router.get("/teams/{team_id}/members")
def team_members(team_id: uuid.UUID, rt: Rt, principal: Staff) -> list[MembershipOut]:
    return views.team_members(rt, team_id, principal)


# --- progress ----------------------------------------------------------------------------


@router.get("/members/{member_id}/progress")
def member_progress(member_id: uuid.UUID, rt: Rt, principal: Viewer) -> MemberProgressOut:
    """五个一 — the five items (verified records only), hours, and what is missing."""
    return views.member_progress(rt, member_id, principal)


@router.get("/communities/{code}/leading-cadres/progress")
def community_cadres(
    rt: Rt, principal: Watcher, code: Annotated[str, Path(pattern=r"^\d{12}$")]
) -> CadresOut:
    """县处级以上领导干部 registered (confirmed) in the community, and their five ones."""
    return views.community_cadres(rt, code, principal)


@router.get("/units/{code}/leading-cadres/progress")
def unit_cadres(rt: Rt, principal: Watcher, code: Annotated[str, Path(max_length=40)]) -> CadresOut:
    """The unit's leading cadres and their five ones (an operator or a community sees those
    registered in its own district or community)."""
    return views.unit_cadres(rt, code, principal)


# --- a unit's members ----------------------------------------------------------------------


@router.get("/units/{code}/progress")
def unit_progress(
    rt: Rt,
    principal: UnitReader,
    response: Response,
    code: Annotated[str, Path(max_length=40)],
    complete: Annotated[bool | None, Query(description="false: only those behind")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[UnitMemberProgressOut]:
    """The unit's members and their five ones, by member id; ``complete=false`` lists those
    behind. A unit reads its own; an operator or a leader the members registered in their
    scope (as the leading cadres' view). ``X-Total-Count`` says how many match."""
    page = views.unit_progress(rt, code, principal, complete, limit, offset)
    response.headers["X-Total-Count"] = str(page.total)
    return page.items
