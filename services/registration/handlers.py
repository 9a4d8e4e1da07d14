"""Registration's member use cases: register (双注册), read, update, withdraw.

One validation path (:func:`validate_member`) serves the API and roster imports, and one
set-based insert (:func:`add_members`) serves both: a roster of 200,000 rows is a handful
of bulk statements, not 200,000 round trips.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from services.registration import registrations, rules
from services.registration.models import Community, CommunityRegistration, Member, Unit
from shared.auth import revoke_member_tokens
from shared.db import UnitOfWork, messaging_stats
from shared.events import (
    CommunityRef,
    Event,
    MemberRegistered,
    MemberUpdated,
    MemberWithdrawn,
    RegistrationSubmitted,
    SealedContact,
)
from shared.http import Conflict, Invalid
from shared.pii import Sealer, mask_id_number, mask_name, mask_phone
from shared.vocabulary import AVAILABILITY

Error = dict[str, str]


class Directory:
    """Units and communities for validation; ``preload`` for bulk work (a few thousand)."""

    def __init__(self, session: Session, preload: bool = False) -> None:
        self.session = session
        self.units: dict[str, Unit | None] = {}
        self.communities: dict[str, Community | None] = {}
        if preload:
            self.units = {u.code: u for u in session.scalars(select(Unit))}
            self.communities = {c.code: c for c in session.scalars(select(Community))}
        self._complete = preload

    def unit(self, code: str) -> Unit | None:
        if code not in self.units and not self._complete:
            self.units[code] = self.session.get(Unit, code)
        return self.units.get(code)

    def community(self, code: str) -> Community | None:
        if code not in self.communities and not self._complete:
            self.communities[code] = self.session.get(Community, code)
        return self.communities.get(code)


@dataclass(frozen=True)
class MemberValues:
    """A member's fields, validated and normalised."""

    name: str
    id_number: str
    phone: str
    email: str | None
    unit: Unit
    residence: Community
    skills: list[str]
    availability: list[str]
    is_leader_cadre: bool


def _open(community: Community | None, today: date) -> bool:
    return community is not None and (community.valid_to is None or community.valid_to >= today)


def validate_member(
    raw: Mapping[str, Any], directory: Directory, today: date, *, need_consent: bool = True
) -> tuple[MemberValues | None, list[Error]]:
    """Check every field of ``raw``; return the values, or every error (field, message)."""
    errors: list[Error] = []

    def check(field: str, fn: Any, *args: Any) -> Any:
        value = raw.get(field)
        if value in (None, "", []):
            errors.append({"field": field, "message": "is required"})
            return None
        try:
            return fn(value, *args)
        except ValueError as exc:
            errors.append({"field": field, "message": str(exc)})
            return None

    name = check("name", rules.name)
    id_number = check("id_number", rules.id_number, today)
    phone = check("phone", rules.mobile)
    email = check("email", rules.email) if raw.get("email") else None
    skills: list[str] = []
    if raw.get("skills"):
        skills = check("skills", rules.skills) or []
    availability = list(raw.get("availability") or [])
    if any(a not in AVAILABILITY for a in availability):
        errors.append(
            {"field": "availability", "message": f"choose from: {', '.join(AVAILABILITY)}"}
        )
    unit = directory.unit(str(raw.get("unit_code") or ""))
    if unit is None or (unit.valid_to is not None and unit.valid_to < today):
        errors.append({"field": "unit_code", "message": f"unknown unit {raw.get('unit_code')!r}"})
    code = str(raw.get("residence_community_code") or "")
    residence = directory.community(code)
    if not _open(residence, today):
        errors.append(
            {"field": "residence_community_code", "message": f"unknown community {code!r}"}
        )
    if need_consent and raw.get("consent") is not True:
        errors.append({"field": "consent", "message": "explicit consent is required"})
    if errors or None in (name, id_number, phone) or unit is None or residence is None:
        return None, errors
    return (
        MemberValues(
            name=name,
            id_number=id_number,
            phone=phone,
            email=email,
            unit=unit,
            residence=residence,
            skills=skills,
            availability=availability,
            is_leader_cadre=bool(raw.get("is_leader_cadre")),
        ),
        [],
    )


def member_communities(
    directory: Directory, unit: Unit, residence: Community
) -> list[tuple[str, Community]]:
    """The member's registrations: unit community, residence, and the unit's contact one."""
    chosen: list[tuple[str, Community]] = []
    for role, code in (
        ("unit", unit.community_code),
        ("residence", residence.code),
        ("contact", unit.contact_community_code),
    ):
        community = residence if code == residence.code else directory.community(code or "")
        if community is not None:
            chosen.append((role, community))
    return chosen


def _contact(sealer: Sealer, name: str, phone: str, email: str | None) -> SealedContact:
    return SealedContact(
        sealed=sealer.seal_json(
            {"name": name, "phone": phone, "email": email}, SealedContact.CONTEXT
        ),
        phone_masked=mask_phone(phone),
    )


def existing_id_numbers(session: Session, hmacs: Iterable[str]) -> set[str]:
    """Which of ``hmacs`` are already registered (chunked IN queries)."""
    wanted = list(hmacs)
    found: set[str] = set()
    for start in range(0, len(wanted), 1000):
        query = select(Member.id_number_hmac).where(
            Member.id_number_hmac.in_(wanted[start : start + 1000])
        )
        found |= {h for h in session.scalars(query) if h}
    return found


def add_members(
    values: list[MemberValues],
    uow: UnitOfWork,
    sealer: Sealer,
    directory: Directory,
    roster_id: uuid.UUID | None = None,
) -> list[uuid.UUID]:
    """Insert members, their registrations and their events in a few bulk statements.

    The caller has already removed ID numbers that are registered (see
    :func:`existing_id_numbers`). ``member.registered`` is routed once per district among
    each member's communities, and carries their registrations.
    """
    now = uow.now()
    members: list[dict[str, Any]] = []
    registrations: list[dict[str, Any]] = []
    events: list[tuple[Event, str]] = []
    for v in values:
        member_id = uuid.uuid4()
        members.append(
            {
                "id": member_id,
                "state": "active",
                "name": v.name,
                "id_number_sealed": sealer.seal(v.id_number, "id_number"),
                "id_number_hmac": sealer.digest(v.id_number),
                "id_number_masked": mask_id_number(v.id_number),
                "phone_sealed": sealer.seal(v.phone, "phone"),
                "phone_hmac": sealer.digest(v.phone),
                "phone_masked": mask_phone(v.phone),
                "email_sealed": sealer.seal(v.email, "email") if v.email else None,
                "unit_code": v.unit.code,
                "residence_community_code": v.residence.code,
                "skills": v.skills,
                "availability": v.availability,
                "is_leader_cadre": v.is_leader_cadre,
                "roster_id": roster_id,
                "consented_at": now,
                "created_at": now,
            }
        )
        refs = []
        for role, community in member_communities(directory, v.unit, v.residence):
            reg_id = uuid.uuid4()
            registrations.append(
                {
                    "id": reg_id,
                    "member_id": member_id,
                    "community_code": community.code,
                    "district_code": community.district_code,
                    "role": role,
                    "state": "submitted",
                    "created_at": now,
                }
            )
            refs.append(
                CommunityRef(
                    registration_id=reg_id,
                    community_code=community.code,
                    role=role,
                    district=community.district_code,
                )
            )
        event = MemberRegistered(
            member_id=member_id,
            unit_code=v.unit.code,
            unit_district=v.unit.district_code,
            communities=refs,
            skills=v.skills,
            availability=v.availability,
            is_leader_cadre=v.is_leader_cadre,
            contact=_contact(sealer, v.name, v.phone, v.email),
            name_masked=mask_name(v.name),
        )
        # member.registered carries the new (submitted) registrations: no separate
        # registration.submitted per community, which would double a roster's events.
        events += [(event, d) for d in sorted({r.district for r in refs})]
    if members:
        uow.session.execute(insert(Member), members)
        uow.session.execute(insert(CommunityRegistration), registrations)
        uow.emit_many(events)
    return [m["id"] for m in members]


def register_member(raw: Mapping[str, Any], uow: UnitOfWork, sealer: Sealer) -> uuid.UUID:
    """One member registers (the API): 422 naming every bad field, 409 for a known ID."""
    directory = Directory(uow.session)
    values, errors = validate_member(raw, directory, uow.now().date())
    if values is None:
        raise Invalid("the member cannot be registered", errors)
    if existing_id_numbers(uow.session, [sealer.digest(values.id_number)]):
        raise Conflict("this ID number is already registered")  # never say by whom
    (member_id,) = add_members([values], uow, sealer, directory)
    return member_id


def update_member(
    member: Member, changes: Mapping[str, Any], uow: UnitOfWork, sealer: Sealer
) -> None:
    """Change phone, e-mail, skills, availability or residence; emit ``member.updated``.

    A new residence transfers the old residence registration out (or cancels it if it was
    never confirmed) and submits one in the new community.
    """
    errors: list[Error] = []
    directory = Directory(uow.session)
    contact = _member_contact(member, sealer)
    if "phone" in changes:
        try:
            phone = rules.mobile(str(changes["phone"]))
        except ValueError as exc:
            errors.append({"field": "phone", "message": str(exc)})
        else:
            member.phone_sealed = sealer.seal(phone, "phone")
            member.phone_hmac = sealer.digest(phone)
            member.phone_masked = mask_phone(phone)
            contact["phone"] = phone
    if "email" in changes:
        try:
            email = rules.email(str(changes["email"])) if changes["email"] else None
        except ValueError as exc:
            errors.append({"field": "email", "message": str(exc)})
        else:
            member.email_sealed = sealer.seal(email, "email") if email else None
            contact["email"] = email
    if "skills" in changes:
        try:
            member.skills = rules.skills(changes["skills"] or [])
        except ValueError as exc:
            errors.append({"field": "skills", "message": str(exc)})
    if "availability" in changes:
        if any(a not in AVAILABILITY for a in changes["availability"] or []):
            errors.append({"field": "availability", "message": ", ".join(AVAILABILITY)})
        else:
            member.availability = list(changes["availability"] or [])
    now = uow.now()
    new_code = changes.get("residence_community_code")
    if new_code and new_code != member.residence_community_code:
        community = directory.community(str(new_code))
        if not _open(community, now.date()):
            errors.append(
                {"field": "residence_community_code", "message": f"unknown community {new_code!r}"}
            )
        elif not errors:
            assert community is not None
            _move_residence(member, community, uow)
    if errors:
        raise Invalid("the member cannot be updated", errors)
    refs = [
        CommunityRef(
            registration_id=r.id,
            community_code=r.community_code,
            role=r.role,
            district=r.district_code,
        )
        for r in member.registrations
        if r.state in ("submitted", "confirmed")
    ]
    unit = directory.unit(member.unit_code)
    assert unit is not None
    event = MemberUpdated(
        member_id=member.id,
        unit_code=member.unit_code,
        unit_district=unit.district_code,
        communities=refs,
        skills=member.skills,
        availability=member.availability,
        is_leader_cadre=member.is_leader_cadre,
        contact=_contact(sealer, contact["name"], contact["phone"], contact.get("email")),
        name_masked=mask_name(contact["name"]),
    )
    for district in sorted({r.district for r in refs}):
        uow.emit(event, district=district)


def _member_contact(member: Member, sealer: Sealer) -> dict[str, Any]:
    """The member's contact, opened from its sealed columns."""
    assert member.name and member.phone_sealed
    return {
        "name": member.name,
        "phone": sealer.open(member.phone_sealed, "phone"),
        "email": sealer.open(member.email_sealed, "email") if member.email_sealed else None,
    }


def _move_residence(member: Member, community: Community, uow: UnitOfWork) -> None:
    for reg in member.registrations:
        if reg.role == "residence" and reg.state in ("submitted", "confirmed"):
            to = "transferred_out" if reg.state == "confirmed" else "cancelled"
            registrations.move(reg, to, uow, reason="residence moved")
    again = next(
        (
            r
            for r in member.registrations
            if r.community_code == community.code and r.role == "residence"
        ),
        None,
    )
    if again is not None and again.state == "rejected":
        registrations.move(again, "submitted", uow)
    else:
        if again is None:  # moving back reuses the old row: one per community and role
            again = CommunityRegistration(
                id=uuid.uuid4(),
                community_code=community.code,
                district_code=community.district_code,
                role="residence",
                created_at=uow.now(),
            )
            member.registrations.append(again)
        again.state = "submitted"
        again.reason = None
        again.updated_at = uow.now()
        uow.session.flush()
        uow.emit(
            RegistrationSubmitted(
                registration_id=again.id,
                member_id=member.id,
                community_code=community.code,
                role="residence",
                state="submitted",
            ),
            district=community.district_code,
        )
    member.residence_community_code = community.code


def withdraw_member(member: Member, uow: UnitOfWork) -> None:
    """退出 — erase the member's personal data here and tell every service to do the same."""
    districts = sorted({r.district_code for r in member.registrations})
    now = uow.now()
    member.state = "withdrawn"
    member.withdrawn_at = now
    for attr in (
        "name",
        "id_number_sealed",
        "id_number_hmac",
        "id_number_masked",
        "phone_sealed",
        "phone_hmac",
        "phone_masked",
        "email_sealed",
        "consented_at",
    ):
        setattr(member, attr, None)
    member.skills = []
    member.availability = []
    for reg in member.registrations:
        if reg.state in ("submitted", "confirmed"):
            registrations.move(reg, "cancelled", uow, reason="member withdrew")
    revoke_member_tokens(uow, member.id)
    for district in districts:
        uow.emit(MemberWithdrawn(member_id=member.id), district=district)


def member_view(member: Member) -> dict[str, Any]:
    """A member as shown over HTTP: personal data masked."""
    return {
        "id": str(member.id),
        "state": member.state,
        "name": member.name,
        "id_number": member.id_number_masked,
        "phone": member.phone_masked,
        "unit_code": member.unit_code,
        "residence_community_code": member.residence_community_code,
        "skills": member.skills,
        "availability": member.availability,
        "is_leader_cadre": member.is_leader_cadre,
        "registrations": [registration_view(r) for r in member.registrations],
    }


def registration_view(r: CommunityRegistration) -> dict[str, Any]:
    return {
        "id": str(r.id),
        "community_code": r.community_code,
        "district_code": r.district_code,
        "role": r.role,
        "state": r.state,
        "reason": r.reason,
    }


def stats(uow: UnitOfWork) -> dict[str, int]:
    """What registration holds and has sent, for operators and the demo."""
    s = uow.session
    confirmed = select(func.count()).select_from(CommunityRegistration)
    return {
        "members": s.scalar(
            select(func.count()).select_from(Member).where(Member.state == "active")
        )
        or 0,
        "registrations": s.scalar(confirmed) or 0,
        "registrations_confirmed": s.scalar(
            confirmed.where(CommunityRegistration.state == "confirmed")
        )
        or 0,
        **messaging_stats(uow),
    }
