"""The events reporting listens to (all of them), and what it does with each.

Every applied envelope is first appended to the event log (:func:`projections.log_event`),
in the same transaction as its effects; :data:`PROJECTIONS` is the table a rebuild replays.
"""

from __future__ import annotations

from services.reporting import projections, pseudonyms
from shared.bus import Handler
from shared.db import UnitOfWork
from shared.events import (
    CATALOGUE,
    REGISTRATION_EVENTS,
    WISH_EVENTS,
    ActivityReturned,
    ActivitySubmitted,
    ActivityVerified,
    CommunityChanged,
    Envelope,
    Event,
    MemberRegistered,
    MemberUpdated,
    MemberWithdrawn,
    PairingEnded,
    PairingMade,
    UnitChanged,
)
from shared.runtime import Runtime

#: What each event does to the read models (the log aside): applied live and on rebuild.
PROJECTIONS: dict[type[Event], list[Handler]] = {
    MemberRegistered: [projections.record_member],
    MemberUpdated: [projections.record_member],
    MemberWithdrawn: [projections.forget_member],
    **{cls: [projections.record_registration] for cls in REGISTRATION_EVENTS},
    CommunityChanged: [projections.record_community],
    UnitChanged: [projections.record_unit],
    PairingMade: [projections.record_pairing],
    PairingEnded: [projections.record_pairing],
    **{cls: [projections.record_wish] for cls in WISH_EVENTS.values()},
    ActivitySubmitted: [projections.record_activity],
    ActivityVerified: [projections.record_activity],
    ActivityReturned: [projections.record_activity],
}


def handlers_for(rt: Runtime) -> dict[type[Event], list[Handler]]:
    """Every event in the catalogue: a withdrawn member's id replaced by their pseudonym,
    logged, then projected (if it changes a figure); a withdrawal then pseudonymises."""

    def apply(event: Event, envelope: Envelope, uow: UnitOfWork) -> None:
        event, envelope = pseudonyms.substitute(event, envelope, uow, rt.sealer)
        for handler in (projections.log_event, *PROJECTIONS.get(type(event), [])):
            handler(event, envelope, uow)
        if isinstance(event, MemberWithdrawn):
            pseudonyms.forget(uow, event.member_id, rt.sealer)

    return {cls: [apply] for cls in CATALOGUE.values()}
