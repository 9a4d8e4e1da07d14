"""The events pairing listens to, and what it does with each."""

from __future__ import annotations

from services.pairing import handlers
from shared.bus import Handler
from shared.events import (
    REGISTRATION_EVENTS,
    CommunityChanged,
    Event,
    MemberRegistered,
    MemberUpdated,
    MemberWithdrawn,
)
from shared.runtime import Runtime


def handlers_for(rt: Runtime) -> dict[type[Event], list[Handler]]:
    return {
        MemberRegistered: [handlers.record_member],
        MemberUpdated: [handlers.record_member],
        MemberWithdrawn: [handlers.forget_member],
        CommunityChanged: [handlers.record_community],
        **{cls: [handlers.record_registration] for cls in REGISTRATION_EVENTS},
    }
