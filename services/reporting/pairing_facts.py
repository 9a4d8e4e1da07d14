"""Projections of pairing's events: pairings (双对接), micro-wishes, five-ones records."""

from __future__ import annotations

from services.reporting.figures.values import CLAIMED
from services.reporting.models import PairingState, RecordFact, WishState
from services.reporting.projections import refresh_status
from services.reporting.spans import change, current
from shared.db import UnitOfWork
from shared.events import ActivityChanged, Envelope, PairingChanged, WishChanged


def record_pairing(event: PairingChanged, envelope: Envelope, uow: UnitOfWork) -> None:
    change(
        uow,
        PairingState,
        {"pairing_id": event.pairing_id},
        {
            "member_id": event.member_id,
            "kind": event.kind,
            "community_code": event.community_code,
            "state": event.state,
        },
        envelope.occurred_at,
    )
    refresh_status(uow, event.member_id)


def record_wish(event: WishChanged, envelope: Envelope, uow: UnitOfWork) -> None:
    """The wish's new state and who holds it: a claimed, fulfilled, confirmed or evaluated
    wish (:data:`~services.reporting.figures.values.CLAIMED`) keeps its member, also when the event
    names nobody; a released one (published again) has none."""
    member_id = event.member_id if event.state in CLAIMED else None  # released: nobody
    if member_id is None and event.state in CLAIMED:
        before = current(uow, WishState, wish_id=event.wish_id)
        member_id = before.member_id if before is not None else None
    change(
        uow,
        WishState,
        {"wish_id": event.wish_id},
        {"community_code": event.community_code, "state": event.state, "member_id": member_id},
        envelope.occurred_at,
    )


def record_activity(event: ActivityChanged, envelope: Envelope, uow: UnitOfWork) -> None:
    """A service record's state; it counts from the moment it was verified (final)."""
    row = uow.session.get(RecordFact, event.record_id)
    if row is None:
        row = RecordFact(record_id=event.record_id)
        uow.session.add(row)
    elif row.state == "verified":
        return  # verified is final: a late 'submitted' changes nothing
    row.member_id = event.member_id
    row.kind = event.kind
    row.community_code = event.community_code
    row.day = event.day
    row.hours = event.hours
    row.state = event.state
    row.verified_at = envelope.occurred_at if event.state == "verified" else None
    if event.state == "verified":
        uow.session.flush()
        refresh_status(uow, event.member_id)
