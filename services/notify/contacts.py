"""Who notify can reach: members' contacts (from registration's events), staff contacts
(community staff, unit organisers, leaders: kept here), the channels each accepts, and the
directory names messages use.

Contacts are sealed with the deployment's key; the phone's HMAC finds a number again (an
inbound "TD" reply) without storing it in clear; only masks are shown.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import InstrumentedAttribute

from services.notify.models import (
    CommunityName,
    Contact,
    Notification,
    NotificationEvent,
    StaffContact,
    UnitDistrict,
)
from shared.auth import revoke_member_tokens
from shared.db import UnitOfWork
from shared.events import (
    CommunityChanged,
    Envelope,
    MemberRegistered,
    MemberWithdrawn,
    SealedContact,
    UnitChanged,
)
from shared.http import Invalid
from shared.pii import Sealer, mask_email, mask_name, mask_phone, mobile, national_mobile

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


# --- members -------------------------------------------------------------------------------


def keep_contact(
    event: MemberRegistered, envelope: Envelope, uow: UnitOfWork, sealer: Sealer
) -> None:
    """Keep (or refresh) how to reach the member; their channel choices stay as they were."""
    if event.contact is None:
        return
    person = sealer.open_json(event.contact.sealed, SealedContact.CONTEXT)
    phone = person.get("phone") or None
    email = person.get("email") or None
    contact = uow.session.get(Contact, event.member_id)
    if contact is None:
        contact = Contact(member_id=event.member_id, sms_enabled=True, email_enabled=True)
        uow.session.add(contact)
    contact.sealed = event.contact.sealed
    contact.phone_masked = event.contact.phone_masked or (mask_phone(phone) if phone else None)
    contact.phone_hmac = sealer.digest(national_mobile(phone)) if phone else None
    contact.email_masked = mask_email(email) if email else None
    contact.unit_code = event.unit_code
    contact.communities = [c.community_code for c in event.communities]
    contact.updated_at = uow.now()


def forget_member(event: MemberWithdrawn, envelope: Envelope, uow: UnitOfWork) -> None:
    """A withdrawn member: contact and message history erased; nothing queued is sent."""
    revoke_member_tokens(uow, event.member_id)
    session = uow.session
    session.execute(delete(Contact).where(Contact.member_id == event.member_id))
    session.execute(delete(NotificationEvent).where(NotificationEvent.member_id == event.member_id))
    session.execute(delete(Notification).where(Notification.member_id == event.member_id))


@dataclass(frozen=True)
class Preferences:
    sms: bool
    email: bool


def preferences(uow: UnitOfWork, member_id: uuid.UUID) -> Preferences | None:
    contact = uow.session.get(Contact, member_id)
    if contact is None:
        return None
    return Preferences(sms=contact.sms_enabled, email=contact.email_enabled)


def set_preferences(
    uow: UnitOfWork, member_id: uuid.UUID, sms: bool | None, email: bool | None
) -> Preferences | None:
    """The channels a member accepts; messages already queued are checked again at send."""
    contact = uow.session.get(Contact, member_id)
    if contact is None:
        return None
    if sms is not None:
        contact.sms_enabled = sms
    if email is not None:
        contact.email_enabled = email
    contact.updated_at = uow.now()
    return Preferences(sms=contact.sms_enabled, email=contact.email_enabled)


def opt_out_number(uow: UnitOfWork, sealer: Sealer, phone: str) -> int:
    """An inbound "TD" from ``phone``: every contact with that number stops getting SMS."""
    digest = sealer.digest(national_mobile(phone))
    members = uow.session.execute(
        update(Contact).where(Contact.phone_hmac == digest).values(sms_enabled=False)
    )
    staff = uow.session.execute(
        update(StaffContact).where(StaffContact.phone_hmac == digest).values(sms_enabled=False)
    )
    return int(members.rowcount or 0) + int(staff.rowcount or 0)  # type: ignore[attr-defined]


# --- staff contacts --------------------------------------------------------------------------

STAFF_ROLES = ("community", "unit", "leader")


def _scope_error(role: str, scope: str) -> str | None:
    kind, _, code = scope.partition(":")
    if role == "community" and not (kind == "community" and re.fullmatch(r"\d{12}", code)):
        return "community staff take a scope community:CODE (12 digits)"
    if role == "unit" and not (kind == "unit" and re.fullmatch(r"[\w-]{1,40}", code)):
        return "a unit organiser takes a scope unit:CODE"
    if role == "leader" and not (
        scope == "city"
        or (kind == "district" and re.fullmatch(r"\d{6}", code))
        or (kind == "community" and re.fullmatch(r"\d{12}", code))
        or (kind == "unit" and re.fullmatch(r"[\w-]{1,40}", code))
    ):
        return "a leader takes a scope city, district:CODE, unit:CODE or community:CODE"
    return None


def check_staff(data: dict[str, Any]) -> dict[str, Any]:
    """Validate a staff contact; raise Invalid naming every bad field."""
    errors = []
    role = data.get("role")
    if role not in STAFF_ROLES:
        errors.append({"field": "role", "message": f"one of {', '.join(STAFF_ROLES)}"})
    elif (problem := _scope_error(role, data.get("scope") or "")) is not None:
        errors.append({"field": "scope", "message": problem})
    name = (data.get("name") or "").strip()
    if not 1 <= len(name) <= 30:
        errors.append({"field": "name", "message": "1 to 30 characters"})
    phone = None
    if data.get("phone"):
        try:
            phone = mobile(data["phone"])
        except ValueError as exc:
            errors.append({"field": "phone", "message": str(exc)})
    email = (data.get("email") or "").strip() or None
    if email is not None and not _EMAIL.match(email):
        errors.append({"field": "email", "message": "not an e-mail address"})
    if phone is None and email is None:
        errors.append({"field": "phone", "message": "give a phone or an e-mail"})
    if errors:
        raise Invalid("the contact has invalid fields", errors)
    return {"role": role, "scope": data["scope"], "name": name, "phone": phone, "email": email}


def scope_district(uow: UnitOfWork, scope: str) -> str | None:
    kind, _, code = scope.partition(":")
    if kind == "community":
        return code[:6]
    if kind == "district":
        return code
    if kind == "unit":
        unit = uow.session.get(UnitDistrict, code)
        return unit.district if unit else None
    return None


def save_staff(
    uow: UnitOfWork, sealer: Sealer, data: dict[str, Any], contact: StaffContact | None = None
) -> StaffContact:
    """Create (or replace the details of) a staff contact."""
    valid = check_staff(data)
    district = scope_district(uow, valid["scope"])  # a query: before the new row is added
    if contact is None:
        contact = StaffContact(
            id=uuid.uuid4(), state="active", sms_enabled=True, email_enabled=True
        )
        uow.session.add(contact)
    phone, email = valid["phone"], valid["email"]
    contact.role = valid["role"]
    contact.scope = valid["scope"]
    contact.district = district
    contact.sealed = sealer.seal_json(
        {"name": valid["name"], "phone": phone, "email": email}, SealedContact.CONTEXT
    )
    contact.name_masked = mask_name(valid["name"])
    contact.phone_masked = mask_phone(phone) if phone else None
    contact.phone_hmac = sealer.digest(phone) if phone else None
    contact.email_masked = mask_email(email) if email else None
    contact.updated_at = uow.now()
    uow.session.flush()
    return contact


def staff_view(contact: StaffContact) -> dict[str, Any]:
    return {
        "id": str(contact.id),
        "state": contact.state,
        "role": contact.role,
        "scope": contact.scope,
        "name": contact.name_masked,
        "phone": contact.phone_masked,
        "email": contact.email_masked,
        "sms": contact.sms_enabled,
        "email_enabled": contact.email_enabled,
    }


def staff_for(uow: UnitOfWork, role: str, scope: str) -> list[StaffContact]:
    """The active staff contacts of ``role`` for ``scope`` (e.g. community:410303001001)."""
    return list(
        uow.session.scalars(
            select(StaffContact)
            .where(
                StaffContact.role == role,
                StaffContact.scope == scope,
                StaffContact.state == "active",
            )
            .order_by(StaffContact.id)
        )
    )


# --- directory names -----------------------------------------------------------------------


def record_community(event: CommunityChanged, envelope: Envelope, uow: UnitOfWork) -> None:
    current = uow.session.get(CommunityName, event.code)
    if current is None:
        uow.session.add(CommunityName(code=event.code, name=event.name))
    else:
        current.name = event.name


def record_unit(event: UnitChanged, envelope: Envelope, uow: UnitOfWork) -> None:
    current = uow.session.get(UnitDistrict, event.code)
    if current is None:
        uow.session.add(UnitDistrict(code=event.code, district=event.district, name=event.name))
    else:
        current.district, current.name = event.district, event.name


def community_name(uow: UnitOfWork, code: str) -> str:
    row = uow.session.get(CommunityName, code)
    return row.name if row else code


def community_names(uow: UnitOfWork, codes: list[str]) -> str:
    """``王城社区、长安路社区`` (the code where the name is not known yet)."""
    rows = uow.session.execute(
        select(CommunityName.code, CommunityName.name).where(CommunityName.code.in_(codes))
    )
    known = {code: name for code, name in rows}
    return "、".join(known.get(code, code) for code in codes)


def sealed_names(
    uow: UnitOfWork, sealer: Sealer, key: InstrumentedAttribute[Any], ids: Iterable[Any]
) -> dict[Any, str]:
    """Names in clear, opened from the sealed contacts whose ``key`` (``Contact.member_id``
    or ``StaffContact.id``) is in ``ids``: one query per 5,000, whatever the audience."""
    wanted, model, names = list(ids), key.class_, {}
    for start in range(0, len(wanted), 5000):
        for rid, sealed in uow.session.execute(
            select(key, model.sealed).where(key.in_(wanted[start : start + 5000]))
        ):
            names[rid] = str(sealer.open_json(sealed, SealedContact.CONTEXT).get("name") or "")
    return names
