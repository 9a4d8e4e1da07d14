"""Who notify can reach: members' contacts and staff contacts (community staff, unit
organisers, leaders), both replicas of registration's events; the channels each accepts,
and the directory names messages use.

Contacts are sealed with the deployment's key; the phone's HMAC finds a number again (an
inbound "TD" reply) without storing it in clear; only masks are shown.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, delete, or_, select, true, update
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
from shared.bus import residents_served
from shared.config import Settings
from shared.db import UnitOfWork
from shared.events import (
    CommunityChanged,
    Envelope,
    MemberRegistered,
    MemberWithdrawn,
    SealedContact,
    StaffAccountDisabled,
    StaffAccountSaved,
    UnitChanged,
)
from shared.pii import Sealer, mask_email, mask_name, mask_phone, national_mobile

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
    contact = uow.find(Contact, event.member_id)
    if contact is None:
        contact = Contact(member_id=event.member_id, sms_enabled=True, email_enabled=True)
        uow.session.add(contact)
    contact.sealed = event.contact.sealed
    contact.phone_masked = event.contact.phone_masked or (mask_phone(phone) if phone else None)
    contact.phone_hmac = sealer.digest(national_mobile(phone)) if phone else None
    contact.email_masked = mask_email(email) if email else None
    contact.unit_code = event.unit_code
    contact.communities = [c.community_code for c in event.communities]
    contact.residence_district = next(
        (c.district for c in event.communities if c.role == "residence"), None
    )
    contact.updated_at = uow.now()


def residents(settings: Settings) -> list[str] | None:
    """The districts whose residents this deployment tells (None: every district)."""
    return residents_served(settings.district, settings.common.separate_districts)


def told_here(contact: Contact | None, served: Sequence[str] | None) -> bool:
    """Whether this deployment (serving the residents of ``served``, None: all) sends the
    member what is hers alone rather than a community's: the welcome and the reminders. A
    member whose two communities lie in deployments apart is told by the one serving the
    district she lives in; the other keeps her contact for its communities' own news
    (a pairing, a claimed wish, a returned record)."""
    return (
        served is None
        or contact is None
        or contact.residence_district is None
        or contact.residence_district in served
    )


def living_here(served: Sequence[str] | None) -> ColumnElement[bool]:
    """:func:`told_here` as a condition on :class:`Contact` (the reminders' audience)."""
    if served is None:
        return true()
    return or_(Contact.residence_district.is_(None), Contact.residence_district.in_(served))


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


#: Inbound SMS that mean "stop sending me messages" (退订).
STOP_WORDS = frozenset({"TD", "T", "退订", "N", "STOP", "取消"})


def opt_out_replies(uow: UnitOfWork, sealer: Sealer, replies: list[dict[str, Any]]) -> int:
    """Inbound SMS (Aliyun ``phone_number``/``content``, Tencent ``mobile``/``text``): a
    stop word (:data:`STOP_WORDS`, "TD", "T", "退订" …) turns SMS off for that number.
    How many contacts stopped getting SMS; the caller commits."""
    opted_out = 0
    for reply in replies:
        phone = str(reply.get("phone_number") or reply.get("mobile") or "")
        text = str(reply.get("content") or reply.get("text") or "").strip().upper()
        if phone and text in STOP_WORDS:
            opted_out += opt_out_number(uow, sealer, phone)
    return opted_out


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
# A replica of registration's staff accounts (``staff.saved``/``staff.disabled``), keyed by
# the account id: staff are entered once, in registration, by the operator above them.


def keep_staff(
    event: StaffAccountSaved, envelope: Envelope, uow: UnitOfWork, sealer: Sealer
) -> None:
    """Keep (or refresh) how to reach a staff account; its channel choices (an SMS "TD")
    stay as they were. An event older than what the replica holds changes nothing, so a
    redelivered ``staff.saved`` cannot bring a disabled account back."""
    contact = uow.session.get(StaffContact, event.account_id)
    if contact is not None and envelope.occurred_at < contact.updated_at:
        return
    person = SealedContact.open(sealer, event.contact.sealed)
    phone = person.get("phone") or None
    email = person.get("email") or None
    if contact is None:
        contact = StaffContact(id=event.account_id, sms_enabled=True, email_enabled=True)
        uow.session.add(contact)
    contact.role = event.role
    contact.scope = event.scope
    contact.district = event.district
    contact.state = event.state
    contact.sealed = event.contact.sealed
    contact.name_masked = event.name_masked
    contact.phone_masked = event.contact.phone_masked or (mask_phone(phone) if phone else None)
    contact.phone_hmac = sealer.digest(national_mobile(phone)) if phone else None
    contact.email_masked = mask_email(email) if email else None
    contact.updated_at = envelope.occurred_at


def disable_staff(event: StaffAccountDisabled, envelope: Envelope, uow: UnitOfWork) -> None:
    """A disabled account hears nothing more: what is queued for it is dropped at send time
    (an inactive staff contact is no recipient)."""
    contact = uow.session.get(StaffContact, event.account_id)
    if contact is None or envelope.occurred_at < contact.updated_at:
        return  # never saved here (or saved again since): nothing to disable
    contact.state = "disabled"
    contact.updated_at = envelope.occurred_at


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
