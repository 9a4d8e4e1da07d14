"""Registration's use cases: load the directory, register a member (双注册)."""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import func, select

from services.registration import rules
from services.registration.models import Community, CommunityRegistration, Member, Unit
from shared.db import UnitOfWork, messaging_stats
from shared.events import CommunityRef, MemberRegistered, SealedContact
from shared.http import Conflict, Invalid
from shared.pii import Sealer, mask_id_number, mask_phone

CONTACT_CONTEXT = "member-contact"


@dataclass(frozen=True)
class RegisterMember:
    """Command: register a member in their unit's and their residence community."""

    name: str
    id_number: str
    phone: str
    unit_code: str
    residence_community_code: str
    consent: bool
    email: str | None = None
    skills: list[str] = field(default_factory=list)
    is_leader_cadre: bool = False


def register_member(cmd: RegisterMember, uow: UnitOfWork, sealer: Sealer) -> Member:
    """Create the member and one registration per community; emit ``member.registered``.

    The event is routed once per district the member's communities lie in, so a member
    of a city-level unit living in another district reaches both.
    """
    errors: list[dict[str, str]] = []
    today = uow.now().date()

    def check(field_name: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except ValueError as exc:
            errors.append({"field": field_name, "message": str(exc)})
            return None

    name = check("name", rules.name, cmd.name)
    id_number = check("id_number", rules.id_number, cmd.id_number, today)
    phone = check("phone", rules.mobile, cmd.phone)
    if not cmd.consent:
        errors.append({"field": "consent", "message": "explicit consent is required"})
    session = uow.session
    unit = session.get(Unit, cmd.unit_code)
    if unit is None:
        errors.append({"field": "unit_code", "message": f"unknown unit {cmd.unit_code!r}"})
    residence = session.get(Community, cmd.residence_community_code)
    if residence is None:
        errors.append(
            {
                "field": "residence_community_code",
                "message": f"unknown community {cmd.residence_community_code!r}",
            }
        )
    if errors:
        raise Invalid("the member cannot be registered", errors)
    assert unit is not None and residence is not None and id_number and phone and name

    id_hmac = sealer.digest(id_number)
    if session.scalar(select(Member.id).where(Member.id_number_hmac == id_hmac)) is not None:
        # Never say who holds it.
        raise Conflict("this ID number is already registered")

    now = uow.now()
    member = Member(
        id=uuid.uuid4(),
        name=name,
        id_number_sealed=sealer.seal(id_number, "id_number"),
        id_number_hmac=id_hmac,
        id_number_masked=mask_id_number(id_number),
        phone_sealed=sealer.seal(phone, "phone"),
        phone_hmac=sealer.digest(phone),
        phone_masked=mask_phone(phone),
        email=cmd.email,
        unit_code=unit.code,
        residence_community_code=residence.code,
        skills=list(cmd.skills),
        is_leader_cadre=cmd.is_leader_cadre,
        consented_at=now,
        created_at=now,
    )
    session.add(member)
    communities = _member_communities(session, unit, residence)
    for role, community in communities:
        member.registrations.append(
            CommunityRegistration(
                id=uuid.uuid4(),
                community_code=community.code,
                district_code=community.district_code,
                role=role,
                created_at=now,
            )
        )
    session.flush()
    event = MemberRegistered(
        member_id=member.id,
        unit_code=unit.code,
        unit_district=unit.district_code,
        communities=[
            CommunityRef(
                registration_id=r.id,
                community_code=r.community_code,
                role=r.role,
                district=r.district_code,
            )
            for r in member.registrations
        ],
        skills=member.skills,
        is_leader_cadre=member.is_leader_cadre,
        contact=SealedContact(
            sealed=sealer.seal_json(
                {"name": name, "phone": phone, "email": cmd.email}, CONTACT_CONTEXT
            ),
            phone_masked=member.phone_masked,
        ),
    )
    for district in sorted({r.district_code for r in member.registrations}):
        uow.emit(event, district=district)
    return member


def _member_communities(
    session: Any, unit: Unit, residence: Community
) -> list[tuple[str, Community]]:
    chosen: list[tuple[str, Community]] = []
    for role, code in (
        ("unit", unit.community_code),
        ("residence", residence.code),
        ("contact", unit.contact_community_code),
    ):
        if code is None:
            continue
        community = residence if code == residence.code else session.get(Community, code)
        if community is not None:
            chosen.append((role, community))
    return chosen


def member_view(member: Member) -> dict[str, Any]:
    """A member as shown over HTTP: personal data masked."""
    return {
        "id": str(member.id),
        "name": member.name,
        "id_number": member.id_number_masked,
        "phone": member.phone_masked,
        "email": member.email,
        "unit_code": member.unit_code,
        "residence_community_code": member.residence_community_code,
        "skills": member.skills,
        "is_leader_cadre": member.is_leader_cadre,
        "registrations": [
            {
                "id": str(r.id),
                "community_code": r.community_code,
                "role": r.role,
                "state": r.state,
            }
            for r in member.registrations
        ],
    }


# --- directory ---------------------------------------------------------------------------

DIRECTORY_FIELDS = ("kind", "code", "name", "parent_code")


def read_directory_csv(data: bytes) -> list[dict[str, str]]:
    """Rows of a directory CSV (UTF-8, UTF-8 with BOM, or GB18030)."""
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise Invalid("the file is neither UTF-8 nor GBK/GB18030")
    reader = csv.DictReader(io.StringIO(text))
    missing = [f for f in DIRECTORY_FIELDS if f not in (reader.fieldnames or [])]
    if missing:
        raise Invalid(
            "the directory file lacks columns",
            [{"field": f, "message": "column missing from the header"} for f in missing],
        )
    return [{k: (v or "").strip() for k, v in row.items() if k} for row in reader]


def load_directory(rows: list[dict[str, str]], uow: UnitOfWork) -> dict[str, int]:
    """Upsert communities and units; loading the same rows again changes nothing."""
    session = uow.session
    errors: list[dict[str, str]] = []
    counts = {"community": 0, "unit": 0, "unchanged": 0}
    for number, row in enumerate(rows, start=2):
        kind = row["kind"]
        if kind == "community":
            values: dict[str, Any] = {
                "name": row["name"],
                "district_code": row["code"][:6],
                "valid_from": _date(row.get("valid_from")),
                "valid_to": _date(row.get("valid_to")),
            }
            if len(row["code"]) != 12 or not row["code"].isdigit():
                errors.append({"field": f"row {number}: code", "message": "must be 12 digits"})
                continue
            model: type[Community] | type[Unit] = Community
        elif kind == "unit":
            level = row.get("level") or "county"
            values = {
                "name": row["name"],
                "level": level,
                "district_code": "410300" if level == "city" else row["parent_code"][:6],
                "community_code": row.get("community_code") or None,
                "contact_community_code": row.get("contact_community_code") or None,
            }
            model = Unit
        elif kind in ("district", "street"):
            continue  # divisions are implied by the codes for now
        else:
            errors.append({"field": f"row {number}: kind", "message": f"unknown kind {kind!r}"})
            continue
        current = session.get(model, row["code"])
        if current is None:
            session.add(model(code=row["code"], **values))
            counts[kind] += 1
        elif any(getattr(current, k) != v for k, v in values.items()):
            for k, v in values.items():
                setattr(current, k, v)
            counts[kind] += 1
        else:
            counts["unchanged"] += 1
        session.flush()
    if errors:
        raise Invalid("the directory file has bad rows", errors)
    return counts


def _date(raw: str | None) -> date | None:
    return date.fromisoformat(raw) if raw else None


def stats(uow: UnitOfWork) -> dict[str, int]:
    """What registration holds and has sent, for operators and the demo."""
    s = uow.session
    return {
        "members": s.scalar(select(func.count()).select_from(Member)) or 0,
        "registrations": s.scalar(select(func.count()).select_from(CommunityRegistration)) or 0,
        **messaging_stats(uow),
    }
