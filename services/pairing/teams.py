"""服务团队 — joining and leaving a community's service team.

A membership is requested → confirmed → left (a request may also be withdrawn: requested →
left; someone who left may ask again). Staff who add a member confirm at once. A confirmed
membership fills the team item of the five ones (once per member).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from services.pairing.activities import cas, record_automatic, registered_member
from services.pairing.models import Team, TeamMembership
from shared.db import UnitOfWork
from shared.events import TeamJoined, TeamJoinRequested, TeamLeft, TeamMembershipChanged
from shared.http import Conflict

TRANSITIONS: dict[str, tuple[str, ...]] = {
    "requested": ("confirmed", "left"),
    "confirmed": ("left",),
    "left": ("requested", "confirmed"),
}
EVENTS: dict[str, type[TeamMembershipChanged]] = {
    "requested": TeamJoinRequested,
    "confirmed": TeamJoined,
    "left": TeamLeft,
}


def membership(uow: UnitOfWork, team: Team, member_id: uuid.UUID) -> TeamMembership | None:
    return uow.session.scalar(
        select(TeamMembership).where(
            TeamMembership.team_id == team.id, TeamMembership.member_id == member_id
        )
    )


def join(team: Team, member_id: uuid.UUID, uow: UnitOfWork, *, confirmed: bool) -> TeamMembership:
    """加入服务团队 — a member asks to join (or staff add them, confirmed at once).

    The member must be registered (confirmed) in the team's community.
    """
    registered_member(uow, member_id, team.community_code)
    to = "confirmed" if confirmed else "requested"
    existing = membership(uow, team, member_id)
    if existing is not None:
        move(team, existing, to, uow)
        return existing
    row = TeamMembership(team_id=team.id, member_id=member_id, state=to, created_at=uow.now())
    uow.session.add(row)
    try:
        uow.session.flush()
    except IntegrityError:  # a concurrent request for the same member and team
        raise Conflict(
            "the member has already asked to join", state="requested", allowed=["confirmed", "left"]
        ) from None
    _changed(team, row, uow)
    return row


def move(team: Team, row: TeamMembership, to: str, uow: UnitOfWork) -> None:
    """Move a membership; a move not in the table is refused with 409."""
    allowed = TRANSITIONS[row.state]
    if to not in allowed:
        raise Conflict(
            f"a {row.state} membership cannot become {to}", state=row.state, allowed=list(allowed)
        )
    if not cas(uow, TeamMembership, row.id, row.state, state=to, updated_at=uow.now()):
        uow.session.refresh(row)
        raise Conflict("the membership changed meanwhile; read it again", state=row.state)
    _changed(team, row, uow)


def _changed(team: Team, row: TeamMembership, uow: UnitOfWork) -> None:
    uow.emit(
        EVENTS[row.state](
            team_id=team.id,
            member_id=row.member_id,
            community_code=team.community_code,
            team_name=team.name,
            state=row.state,
        ),
        district=team.community_code[:6],
    )
    if row.state == "confirmed":
        record_automatic(uow, row.member_id, "team", team.community_code, row.id)


def membership_view(team: Team, row: TeamMembership) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "state": row.state,
        "team_id": str(team.id),
        "team_name": team.name,
        "community_code": team.community_code,
        "member_id": str(row.member_id),
    }
