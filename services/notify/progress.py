"""五个一 — notify's own replica of each member's progress on the five ones, fed by events.

Reminders name only what a member still lacks, so notify keeps, per member, which of the
five are done — the same rule as pairing's ``GET /members/{id}/progress``: an item is done
once a *verified* record of its kind exists. Pairing writes a verified record of its own
(and emits ``activity.verified``) when a wish claim is confirmed and when a team membership
is confirmed, so ``activity.verified`` alone decides. ``wish.confirmed`` and ``team.joined``
are applied too, so the replica does not wait for a second event that is already implied;
``wish.fulfilled`` is not (pairing counts a wish only once the community confirmed it), and
``team.left`` undoes nothing (a verified record is final).

Every handler sets flags or overwrites facts, so applying an event twice changes nothing.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete

from services.notify.models import FiveOnesReplica
from shared.db import UnitOfWork
from shared.events import (
    ActivityChanged,
    ActivityVerified,
    Envelope,
    MemberRegistered,
    MemberUpdated,
    MemberWithdrawn,
    TeamJoined,
    TeamMembershipChanged,
    WishChanged,
    WishConfirmed,
)
from shared.messagebus import EventTable
from shared.vocabulary import FIVE_ONES

#: The five items, in the campaign's order (not message kinds: those are rendering.KINDS).
ITEMS: tuple[str, ...] = tuple(FIVE_ONES)


def _row(uow: UnitOfWork, member_id: uuid.UUID) -> FiveOnesReplica:
    row = uow.find(FiveOnesReplica, member_id)
    if row is None:
        row = FiveOnesReplica(
            member_id=member_id, registered=False, is_leader_cadre=False, updated_at=uow.now()
        )
        for kind in ITEMS:
            setattr(row, kind, False)
        uow.session.add(row)
    return row


def record_member(event: MemberRegistered, envelope: Envelope, uow: UnitOfWork) -> None:
    """A member registered or changed: their unit and whether they are a leading cadre."""
    row = _row(uow, event.member_id)
    row.registered = True
    row.unit_code = event.unit_code
    row.is_leader_cadre = event.is_leader_cadre
    row.updated_at = uow.now()


def mark_done(uow: UnitOfWork, member_id: uuid.UUID, kind: str) -> None:
    """One of the five is done for good (a verified record is final)."""
    if kind not in ITEMS:
        return
    row = _row(uow, member_id)
    if not getattr(row, kind):
        setattr(row, kind, True)
        row.updated_at = uow.now()


def record_activity(event: ActivityChanged, envelope: Envelope, uow: UnitOfWork) -> None:
    if event.state == "verified":
        mark_done(uow, event.member_id, event.kind)


def record_wish(event: WishChanged, envelope: Envelope, uow: UnitOfWork) -> None:
    """``wish.confirmed``: the claimer's wish item is filled (pairing records it so too)."""
    if event.member_id is not None:
        mark_done(uow, event.member_id, "wish")


def record_team(event: TeamMembershipChanged, envelope: Envelope, uow: UnitOfWork) -> None:
    """``team.joined``: the member's team item is filled."""
    mark_done(uow, event.member_id, "team")


def forget_member(event: MemberWithdrawn, envelope: Envelope, uow: UnitOfWork) -> None:
    uow.session.execute(delete(FiveOnesReplica).where(FiveOnesReplica.member_id == event.member_id))


def missing(row: Any) -> list[str]:
    """The items of the five ones ``row`` (a replica row or a result row) still lacks."""
    return [kind for kind in ITEMS if not getattr(row, kind)]


#: What the replica listens to (merged into notify's one handler table, handlers.events).
HANDLERS = (
    EventTable()
    .on(MemberRegistered, record_member)
    .on(MemberUpdated, record_member)
    .on(MemberWithdrawn, forget_member)
    .on(WishConfirmed, record_wish)
    .on(TeamJoined, record_team)
    .on(ActivityVerified, record_activity)
)
