"""The events pairing listens to, and what it does with each."""

from __future__ import annotations

from services.pairing import handlers, pairings, wishes
from shared.auth import apply_revocation
from shared.consumer import Handler
from shared.events import (
    REGISTRATION_EVENTS,
    CommunityChanged,
    Event,
    MemberRegistered,
    MemberUpdated,
    MemberWithdrawn,
    RegistrationCancelled,
    RegistrationConfirmed,
    RegistrationTransferred,
    TokensRevoked,
)
from shared.runtime import Runtime


def handlers_for(rt: Runtime) -> dict[type[Event], list[Handler]]:
    table: dict[type[Event], list[Handler]] = {
        MemberRegistered: [handlers.record_member],
        MemberUpdated: [handlers.record_member],
        MemberWithdrawn: [handlers.forget_member, pairings.erase_member],
        CommunityChanged: [handlers.record_community],
        **{cls: [handlers.record_registration] for cls in REGISTRATION_EVENTS},
        TokensRevoked: [apply_revocation],
    }
    # 双对接: a confirmed report-in pairs that community; leaving it ends the pairings there
    table[RegistrationConfirmed].append(pairings.pair_confirmed)
    table[RegistrationTransferred].append(pairings.end_with_registration)
    table[RegistrationCancelled].append(pairings.end_with_registration)
    return table


def periodic(rt: Runtime) -> dict[str, int]:
    """Sweep the micro-wishes: claims past their time return, wishes past their deadline expire."""
    return wishes.sweep_all(rt)
