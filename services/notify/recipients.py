"""Who a message goes to at send time: the contact opened from its seal, and the parameters
its templates get (opened contacts only here, for the call). Which channel it may take now
is the send policy's (:func:`services.notify.policy.channel_now`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from services.notify.messages import Recipient
from services.notify.models import Contact, Notification, StaffContact
from services.notify.policy import Reachable
from services.notify.sign_in import open_code
from shared.db import UnitOfWork
from shared.events import SealedContact
from shared.pii import Sealer, mask_email, mask_phone


@dataclass(frozen=True)
class Person:
    """A recipient's contact, opened: in clear only for the provider call."""

    name: str
    phone: str | None
    email: str | None
    sms_enabled: bool
    email_enabled: bool

    @property
    def emailable(self) -> bool:
        return self.email is not None and self.email_enabled

    @property
    def reachable(self) -> Reachable:
        """What the send policy reads of it: which addresses it has, which channels it takes."""
        return Reachable(
            phone=bool(self.phone),
            email=bool(self.email),
            sms_enabled=self.sms_enabled,
            email_enabled=self.email_enabled,
        )


def person_of(
    n: Notification, uow: UnitOfWork, sealer: Sealer, *, contact: Contact | None
) -> Person | None:
    """The recipient as of now (None: gone, or an inactive staff contact). ``contact`` is
    the member's contact as the caller read it with the message (None: the member is gone,
    or the recipient is not a member); a staff contact is read here."""
    sealed: str | None
    sms = email = True
    if n.recipient_kind == "member":
        if contact is None:
            return None
        sealed, sms, email = contact.sealed, contact.sms_enabled, contact.email_enabled
    elif n.recipient_kind == "staff":
        staff = uow.session.get(StaffContact, n.staff_id)
        if staff is None or staff.state != "active":
            return None
        sealed, sms, email = staff.sealed, staff.sms_enabled, staff.email_enabled
    else:
        sealed = n.sealed_to
    if not sealed:
        return None
    opened = SealedContact.open(sealer, sealed)
    return Person(
        name=str(opened.get("name") or ""),
        phone=opened.get("phone") or None,
        email=opened.get("email") or None,
        sms_enabled=sms,
        email_enabled=email,
    )


def masked(person: Person, channel: str) -> str | None:
    """The address shown for ``channel``: ``138****8000`` or ``z***@example.cn``."""
    if channel == "email":
        return mask_email(person.email) if person.email else None
    return mask_phone(person.phone) if person.phone else None


def recipient_of(n: Notification) -> Recipient:
    """A member's or a staff contact's message's recipient (for their digest: the daily cap
    does not apply to a report subscriber, see :func:`.policy.cap_day`)."""
    if n.recipient_kind == "member" and n.member_id is not None:
        return Recipient.member(n.member_id)
    if n.recipient_kind == "staff" and n.staff_id is not None:
        return Recipient.staff(n.staff_id)
    raise ValueError(f"message {n.id} is to a sealed contact: it has no digest")


def render_params(
    n: Notification, person: Person, uow: UnitOfWork, sealer: Sealer
) -> dict[str, Any]:
    """The template's params: the message's own, the recipient's name, and the community
    contact's name and number (opened only here: the member needs the number to call; the
    outbox and the history show it masked)."""
    params: dict[str, Any] = {"name": person.name, **n.params}
    open_code(params, sealer)
    staff_id = params.pop("staff_contact_id", None)
    if staff_id:
        staff = uow.session.get(StaffContact, uuid.UUID(str(staff_id)))
        if staff is not None and staff.state == "active":
            opened = SealedContact.open(sealer, staff.sealed)
            params["contact"] = " ".join(
                str(v) for v in (opened.get("name"), opened.get("phone")) if v
            )
    return params
