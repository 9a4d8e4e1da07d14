"""The events reporting listens to, and what it does with each.

Only the event types a projection reads are bound (:data:`PROJECTIONS`): notifications,
team requests and reports go past. Every applied envelope is first appended to the event
log (:func:`services.reporting.event_log.log_event`), in the same transaction as its
effects; :data:`PROJECTIONS` is also the table a rebuild replays.
"""

from __future__ import annotations

from services.reporting import pairing_facts, projections, pseudonyms
from services.reporting.event_log import log_event
from shared.auth import apply_revocation, revoke_member_tokens
from shared.consumer import Handler
from shared.db import UnitOfWork
from shared.events import (
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
    TokensRevoked,
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
    PairingMade: [pairing_facts.record_pairing],
    PairingEnded: [pairing_facts.record_pairing],
    **{cls: [pairing_facts.record_wish] for cls in WISH_EVENTS.values()},
    ActivitySubmitted: [pairing_facts.record_activity],
    ActivityVerified: [pairing_facts.record_activity],
    ActivityReturned: [pairing_facts.record_activity],
}


def handlers_for(rt: Runtime) -> dict[type[Event], list[Handler]]:
    """The events of :data:`PROJECTIONS` (the others are ignored, not logged): a withdrawn
    member's id replaced by their pseudonym, logged, then projected; a withdrawal then
    revokes the member's tokens and pseudonymises (the tables and the log, names dropped)
    — once, live: a rebuild replays only the projections."""

    def apply(event: Event, envelope: Envelope, uow: UnitOfWork) -> None:
        event, envelope = pseudonyms.substitute(event, envelope, uow, rt.sealer)
        log_event(event, envelope, uow)
        for handler in PROJECTIONS[type(event)]:
            handler(event, envelope, uow)
        if isinstance(event, MemberWithdrawn):
            revoke_member_tokens(uow, event.member_id)
            pseudonyms.forget(uow, event.member_id, rt.sealer)

    return {**{cls: [apply] for cls in PROJECTIONS}, TokensRevoked: [apply_revocation]}
