"""社区报到 — the state machine of a community registration.

submitted → confirmed | rejected; rejected → submitted; confirmed → transferred_out |
cancelled. Dual registration is complete when the unit community's and the residence
community's registrations are both confirmed. Anything else is refused with the current
state and what is allowed from it.
"""

from __future__ import annotations

from services.registration.models import CommunityRegistration
from shared.db import UnitOfWork
from shared.events import (
    RegistrationCancelled,
    RegistrationChanged,
    RegistrationConfirmed,
    RegistrationRejected,
    RegistrationSubmitted,
    RegistrationTransferred,
)
from shared.http import Conflict, Invalid

TRANSITIONS: dict[str, tuple[str, ...]] = {
    "submitted": ("confirmed", "rejected", "cancelled"),
    "rejected": ("submitted",),
    "confirmed": ("transferred_out", "cancelled"),
    "transferred_out": (),
    "cancelled": (),
}
EVENTS: dict[str, type[RegistrationChanged]] = {
    "submitted": RegistrationSubmitted,
    "confirmed": RegistrationConfirmed,
    "rejected": RegistrationRejected,
    "transferred_out": RegistrationTransferred,
    "cancelled": RegistrationCancelled,
}


def move(
    registration: CommunityRegistration, to: str, uow: UnitOfWork, reason: str | None = None
) -> None:
    """Move ``registration`` to ``to`` and emit the event, routed to its community's district."""
    allowed = TRANSITIONS[registration.state]
    if to not in allowed:
        raise Conflict(
            f"a {registration.state} registration cannot become {to}",
            state=registration.state,
            allowed=list(allowed),
        )
    if to == "rejected" and not (reason and reason.strip()):
        raise Invalid("a rejection needs a reason", [{"field": "reason", "message": "required"}])
    registration.state = to
    registration.reason = reason.strip() if reason else None
    registration.updated_at = uow.now()
    uow.emit(
        EVENTS[to](
            registration_id=registration.id,
            member_id=registration.member_id,
            community_code=registration.community_code,
            role=registration.role,
            state=to,
            reason=registration.reason,
        ),
        district=registration.district_code,
    )
