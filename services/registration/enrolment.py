"""Enrolment: checking a member's fields and adding members, one or a roster at a time.

One validation path (:func:`validate_member`) serves the API and roster imports, and one
set-based insert (:func:`add_members`) serves both: a roster of 200,000 rows is a handful
of bulk statements, not 200,000 round trips.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from services.registration import rules
from services.registration.models import Community, CommunityRegistration, Member, Unit
from shared.db import UnitOfWork
from shared.events import CommunityRef, Event, MemberRegistered, SealedContact
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
    #: 其他专长 — what the member wrote that maps to no skill, in their own words.
    skills_other: list[str] = field(default_factory=list)


def community_is_open(community: Community | None, today: date) -> bool:
    """The community is in the directory and not closed on ``today``."""
    return community is not None and (community.valid_to is None or community.valid_to >= today)


def field_checker(raw: Mapping[str, Any], errors: list[Error]) -> Callable[..., Any]:
    """``check(field, fn, *args)``: ``fn(value, *args)`` for the field's value (stripped),
    or None with the field's error added to ``errors`` ("is required" when it is empty, the
    ValueError's message when ``fn`` refuses it). Members and staff accounts use it."""

    def check(field: str, fn: Callable[..., Any], *args: Any) -> Any:
        value = raw.get(field)
        if isinstance(value, str):
            value = value.strip()
        if value in (None, "", []):
            errors.append({"field": field, "message": "is required"})
            return None
        try:
            return fn(value, *args)
        except ValueError as exc:
            errors.append({"field": field, "message": str(exc)})
            return None

    return check


def validate_member(
    raw: Mapping[str, Any], directory: Directory, today: date, *, need_consent: bool = True
) -> tuple[MemberValues | None, list[Error]]:
    """Check every field of ``raw``; return the values, or every error (field, message)."""
    errors: list[Error] = []
    check = field_checker(raw, errors)
    name = check("name", rules.name)
    id_number = check("id_number", rules.id_number, today)
    phone = check("phone", rules.mobile)
    email = check("email", rules.email) if raw.get("email") else None
    skills: list[str] = []
    skills_other: list[str] = []
    if raw.get("skills"):  # free text: never refused (unmapped words are kept as they are)
        skills, skills_other = check("skills", rules.skills) or ([], [])
    availability = list(raw.get("availability") or [])
    if any(a not in AVAILABILITY for a in availability):
        errors.append(
            {"field": "availability", "message": f"choose from: {', '.join(AVAILABILITY)}"}
        )
    unit = directory.unit(str(raw.get("unit_code") or ""))
    if unit is None or (unit.valid_to is not None and unit.valid_to < today):
        errors.append({"field": "unit_code", "message": f"unknown unit {raw.get('unit_code')!r}"})
    code = rules.community_code(str(raw.get("residence_community_code") or ""))
    residence = directory.community(code)
    if not community_is_open(residence, today):
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
            skills_other=skills_other,
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


def seal_contact(sealer: Sealer, name: str, phone: str, email: str | None) -> SealedContact:
    """The member's contact as events carry it: sealed for notify, the mobile masked."""
    return SealedContact(
        sealed=SealedContact.seal(sealer, name, phone, email),
        phone_masked=mask_phone(phone),
    )


def add_members(
    values: list[MemberValues],
    uow: UnitOfWork,
    sealer: Sealer,
    directory: Directory,
    roster_id: uuid.UUID | None = None,
) -> list[uuid.UUID]:
    """Insert members, their registrations and their events in a few bulk statements.

    The caller has already removed ID numbers that are registered. ``member.registered`` is
    routed once per district among each member's communities, and carries their
    registrations.
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
                "skills_other": v.skills_other,
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
            contact=seal_contact(sealer, v.name, v.phone, v.email),
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
