"""社区报到 — the state machine of a community registration.

submitted → confirmed | rejected; rejected → submitted; confirmed → transferred_out |
cancelled. Dual registration is complete when the unit community's and the residence
community's registrations are both confirmed. Anything else is refused with the current
state and what is allowed from it.

Community staff confirm and reject the registrations of their communities (others read as
absent), one at a time or a morning's list at once.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select

from services.registration.commands import (
    ConfirmRegistration,
    ConfirmRegistrations,
    RejectRegistration,
)
from services.registration.models import CommunityRegistration
from services.registration.schemas import ConfirmedOut, RefusedId, RegistrationOut
from shared.auth import Principal
from shared.db import UnitOfWork
from shared.events import (
    RegistrationCancelled,
    RegistrationChanged,
    RegistrationConfirmed,
    RegistrationRejected,
    RegistrationSubmitted,
    RegistrationTransferred,
)
from shared.http import Conflict, Invalid, NotFound
from shared.pii import redact
from shared.runtime import Runtime

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
    # words staff typed: a number in them is kept masked (here and in the event)
    registration.reason = redact(reason.strip()) if reason else None
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


def registration_out(r: CommunityRegistration) -> RegistrationOut:
    return RegistrationOut.model_validate(r)


def _covers(principal: Principal, registration: CommunityRegistration) -> bool:
    return principal.covers(
        districts={registration.district_code}, communities={registration.community_code}
    )


def visible(
    uow: UnitOfWork, registration_id: uuid.UUID, principal: Principal
) -> CommunityRegistration:
    """The registration, or 404 when unknown or outside the caller's communities."""
    registration = uow.session.get(CommunityRegistration, registration_id)
    if registration is None or not _covers(principal, registration):
        raise NotFound(f"no registration {registration_id}")
    return registration


def confirm(cmd: ConfirmRegistration, rt: Runtime) -> RegistrationOut:
    with rt.uow() as uow:
        registration = visible(uow, cmd.registration_id, cmd.principal)
        move(registration, "confirmed", uow)
        uow.commit()
        return registration_out(registration)


def reject(cmd: RejectRegistration, rt: Runtime) -> RegistrationOut:
    with rt.uow() as uow:
        registration = visible(uow, cmd.registration_id, cmd.principal)
        move(registration, "rejected", uow, reason=cmd.reason)
        uow.commit()
        return registration_out(registration)


def confirm_all(cmd: ConfirmRegistrations, rt: Runtime) -> ConfirmedOut:
    """Confirm many in one transaction. Each id is confirmed, or refused with why not: one
    unknown or outside the caller's communities is "not found", one that is not waiting
    says its state ("already confirmed")."""
    confirmed = 0
    refused: list[RefusedId] = []
    with rt.uow() as uow:
        rows = uow.session.scalars(
            select(CommunityRegistration).where(CommunityRegistration.id.in_(cmd.registration_ids))
        )
        found = {r.id: r for r in rows}
        for registration_id in cmd.registration_ids:
            registration = found.get(registration_id)
            if registration is None or not _covers(cmd.principal, registration):
                refused.append(RefusedId(id=str(registration_id), reason="not found"))
            elif registration.state != "submitted":
                reason = f"already {registration.state}"
                refused.append(RefusedId(id=str(registration_id), reason=reason))
            else:
                move(registration, "confirmed", uow)
                confirmed += 1
        uow.commit()
    return ConfirmedOut(confirmed=confirmed, refused=refused)
