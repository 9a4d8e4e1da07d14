"""服务团队 — joining and leaving a community's service team.

A membership is requested → confirmed → left (a request may also be withdrawn: requested →
left; someone who left may ask again). Staff who add a member confirm at once. A confirmed
membership fills the team item of the five ones (once per member).
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from services.pairing.access import covers
from services.pairing.activities import (
    acts_for,
    cas,
    for_themself,
    record_automatic,
    registered_member,
)
from services.pairing.models import Team, TeamMembership
from shared.auth import Principal
from shared.db import UnitOfWork
from shared.events import TeamJoined, TeamJoinRequested, TeamLeft, TeamMembershipChanged
from shared.http import Conflict, NotFound

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


def find(uow: UnitOfWork, team_id: uuid.UUID, principal: Principal) -> Team:
    """The team, or 404 when absent or (for staff) outside their scope."""
    team = uow.session.get(Team, team_id)
    if team is None or (principal.role != "member" and not covers(principal, team.community_code)):
        raise NotFound(f"no team {team_id}")
    return team


def find_membership(
    uow: UnitOfWork, team_id: uuid.UUID, member_id: uuid.UUID, principal: Principal
) -> tuple[Team, TeamMembership]:
    """The team and the member's place in it, for someone who may act for that member."""
    for_themself(principal, member_id)
    team = find(uow, team_id, principal)
    acts_for(principal, member_id, team.community_code)
    row = membership(uow, team, member_id)
    if row is None:
        raise NotFound(f"member {member_id} has not asked to join team {team_id}")
    return team, row


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
