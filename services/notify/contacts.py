"""Who notify can reach: members' contacts (from registration's events), staff contacts
(community staff, unit organisers, leaders: kept here), the channels each accepts, and the
directory names messages use.

Contacts are sealed with the deployment's key; the phone's HMAC finds a number again (an
inbound "TD" reply) without storing it in clear; only masks are shown.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, ValidationInfo, field_validator
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
from shared.auth import check_role_scope, revoke_member_tokens
from shared.db import UnitOfWork
from shared.events import (
    CommunityChanged,
    Envelope,
    MemberRegistered,
    MemberWithdrawn,
    SealedContact,
    UnitChanged,
)
from shared.pii import Sealer, mask_email, mask_name, mask_phone, mobile, national_mobile

# --- members -------------------------------------------------------------------------------


def keep_contact(
    event: MemberRegistered, envelope: Envelope, uow: UnitOfWork, sealer: Sealer
) -> None:
    """Keep (or refresh) how to reach the member; their channel choices stay as they were."""
    if event.contact is None:
        return
    person = SealedContact.open(sealer, event.contact.sealed)
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


def set_preferences(
    uow: UnitOfWork, contact: Contact, sms: bool | None, email: bool | None
) -> None:
    """The channels a member accepts; messages already queued are checked again at send."""
    if sms is not None:
        contact.sms_enabled = sms
    if email is not None:
        contact.email_enabled = email
    contact.updated_at = uow.now()


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


class StaffIn(BaseModel):
    """A staff contact notify should reach: the body of ``POST``/``PUT /api/v1/contacts``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    role: Literal["community", "unit", "leader"]
    scope: str = Field(max_length=60)
    name: str = Field(min_length=1, max_length=30)
    phone: str | None = Field(default=None, max_length=30)
    email: EmailStr | None = Field(default=None, max_length=254, validate_default=True)

    @field_validator("phone", "email", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        """A form's empty field means "none given"."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("scope")
    @classmethod
    def _scope(cls, value: str, info: ValidationInfo) -> str:
        if "role" in info.data:  # a bad role is reported on its own
            check_role_scope(info.data["role"], value)
        return value

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        return mobile(value) if value else None

    @field_validator("email")
    @classmethod
    def _phone_or_email(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("phone", "") is None:  # a bad phone says so itself
            raise ValueError("give a phone or an e-mail")
        return value


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
    uow: UnitOfWork, sealer: Sealer, staff: StaffIn, contact: StaffContact | None = None
) -> StaffContact:
    """Create (or replace the details of) a staff contact."""
    district = scope_district(uow, staff.scope)  # a query: before the new row is added
    if contact is None:
        contact = StaffContact(
            id=uuid.uuid4(), state="active", sms_enabled=True, email_enabled=True
        )
        uow.session.add(contact)
    phone, email = staff.phone, staff.email
    contact.role = staff.role
    contact.scope = staff.scope
    contact.district = district
    contact.sealed = SealedContact.seal(sealer, staff.name, phone, email)
    contact.name_masked = mask_name(staff.name)
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


def community_names(uow: UnitOfWork, codes: Iterable[str]) -> dict[str, str]:
    """Each community's name, ``王城社区`` (the code where the name is not known yet)."""
    wanted = list(dict.fromkeys(codes))
    rows = uow.session.execute(
        select(CommunityName.code, CommunityName.name).where(CommunityName.code.in_(wanted))
    )
    known = {code: name for code, name in rows}
    return {code: known.get(code, code) for code in wanted}


def opened_name(sealer: Sealer, sealed: str) -> str:
    """The name in clear from a sealed contact ("" when it has none)."""
    return str(SealedContact.open(sealer, sealed).get("name") or "")


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
            names[rid] = opened_name(sealer, sealed)
    return names


def masked_names(
    uow: UnitOfWork, sealer: Sealer, member_ids: Iterable[uuid.UUID], *, default: str
) -> dict[uuid.UUID, str]:
    """Members' names as others may see them (张*), opened from their sealed contacts;
    ``default`` for a member notify has no contact (or no name) for."""
    wanted = list(member_ids)
    names = sealed_names(uow, sealer, Contact.member_id, wanted)
    return {member_id: mask_name(names.get(member_id, "")) or default for member_id in wanted}
