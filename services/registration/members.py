"""Registration's member use cases: register (双注册), read, update, withdraw.

A member registers through the same validation and insert as a roster row
(:mod:`services.registration.enrolment`); the rest changes one member at a time. Who may
see or change a member is decided here too: out of the caller's scope reads as absent
(404); in scope but only allowed to read, 403. Reading a member unmasked is for admin and
operator tokens only and leaves an audit row.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from services.registration import registrations, rules, sessions
from services.registration.commands import (
    ReadMemberUnmasked,
    RegisterMember,
    UpdateMember,
    WithdrawMember,
)
from services.registration.enrolment import (
    Directory,
    Error,
    add_members,
    community_is_open,
    seal_contact,
    validate_member,
)
from services.registration.models import (
    AuditEntry,
    Community,
    CommunityRegistration,
    Member,
    Unit,
)
from services.registration.schemas import MemberOut, RegisteredOut, SessionOut
from shared.auth import REGISTRANT, Forbidden, Principal, revoke_member_tokens
from shared.db import UnitOfWork
from shared.events import (
    CommunityRef,
    IdNumberTried,
    MemberUpdated,
    MemberWithdrawn,
    RegistrationSubmitted,
)
from shared.http import Conflict, Invalid, NotFound
from shared.pii import Sealer, mask_name, mask_phone
from shared.runtime import Runtime
from shared.vocabulary import AVAILABILITY


class Refused(Conflict):
    """Registration cannot go on. One neutral answer for every reason (a known ID number
    among them), so it never tells the caller who is registered."""

    def __init__(self) -> None:
        super().__init__(
            "registration cannot go on with these details; "
            "if you think this is wrong, ask your community (社区) for help"
        )


def register_member(
    raw: Mapping[str, Any], uow: UnitOfWork, sealer: Sealer, principal: Principal
) -> uuid.UUID:
    """One member registers (the API): 422 naming every bad field; a registrant only with
    the phone they proved; staff only in their scope (else 404). A known ID number gets
    :class:`Refused` and its holder is told (the event commits, the member does not)."""
    directory = Directory(uow.session)
    values, errors = validate_member(raw, directory, uow.now().date())
    if values is None:
        raise Invalid("the member cannot be registered", errors)
    if principal.role == REGISTRANT:
        if sealer.digest(values.phone) != principal.phone_hash:
            raise Invalid(
                "register with the number you signed in with",
                [{"field": "phone", "message": "not the number this session was opened with"}],
            )
    elif not principal.covers(
        districts={values.unit.district_code, values.residence.district_code},
        units={values.unit.code},
        communities={values.residence.code},
    ):
        raise NotFound(f"no unit {values.unit.code}")  # out of scope looks like absent
    holder = uow.session.execute(
        select(Member.id, Unit.district_code)
        .join(Unit, Unit.code == Member.unit_code)
        .where(Member.id_number_hmac == sealer.digest(values.id_number))
    ).first()
    if holder is not None:
        uow.emit(IdNumberTried(member_id=holder.id), district=holder.district_code)
        uow.commit()
        raise Refused()
    if principal.role == REGISTRANT and uow.session.scalar(
        select(Member.id).where(Member.phone_hmac == principal.phone_hash, Member.state == "active")
    ):
        raise Refused()
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
    if "skills" in changes:  # free words: mapped to the vocabulary, the rest kept as written
        member.skills, member.skills_other = rules.skills(changes["skills"] or [])
    if "availability" in changes:
        if any(a not in AVAILABILITY for a in changes["availability"] or []):
            errors.append({"field": "availability", "message": ", ".join(AVAILABILITY)})
        else:
            member.availability = list(changes["availability"] or [])
    now = uow.now()
    new_code = changes.get("residence_community_code")
    new_code = rules.community_code(str(new_code)) if new_code else None
    if new_code and new_code != member.residence_community_code:
        community = directory.community(str(new_code))
        if not community_is_open(community, now.date()):
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
        contact=seal_contact(sealer, contact["name"], contact["phone"], contact.get("email")),
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
    member.skills_other = []
    member.availability = []
    for reg in member.registrations:
        if reg.state in ("submitted", "confirmed"):
            registrations.move(reg, "cancelled", uow, reason="member withdrew")
    revoke_member_tokens(uow, member.id)
    for district in districts:
        uow.emit(MemberWithdrawn(member_id=member.id), district=district)


# --- who may see and change a member ----------------------------------------------------------


def _in_scope(member: Member, principal: Principal, unit: Unit | None) -> bool:
    return principal.covers(
        districts={r.district_code for r in member.registrations}
        | ({unit.district_code} if unit else set()),
        units={member.unit_code},
        communities={r.community_code for r in member.registrations},
        member=str(member.id),
    )


def visible_member(uow: UnitOfWork, member_id: uuid.UUID, principal: Principal) -> Member:
    """The member, or 404 when unknown, outside the caller's scope, or asked by a leader."""
    member = uow.session.get(Member, member_id)
    if member is None or principal.role == "leader":
        raise NotFound(f"no member {member_id}")
    if not _in_scope(member, principal, uow.session.get(Unit, member.unit_code)):
        raise NotFound(f"no member {member_id}")  # out of scope looks like absent
    return member


def editable_member(uow: UnitOfWork, member_id: uuid.UUID, principal: Principal) -> Member:
    """Out of scope (or withdrawn): 404. In scope, but the role may only read: 403."""
    member = visible_member(uow, member_id, principal)
    if member.state != "active":
        raise NotFound(f"no member {member_id}")
    if principal.role not in ("admin", "operator", "member"):
        raise Forbidden(f"a {principal.role} token may read this member, not change it")
    return member


def member_out(member: Member) -> MemberOut:
    """A member as shown over HTTP: personal data masked."""
    return MemberOut.model_validate(member)


# --- the use cases, as the handler table calls them -------------------------------------------


def register(cmd: RegisterMember, rt: Runtime) -> RegisteredOut:
    """双注册 over HTTP. A registrant (a phone proved by SMS code, no account yet) is counted
    against :data:`~services.registration.sessions.REGISTER_LIMITS` even when refused, and
    gets their member session with the answer."""
    principal = cmd.principal
    if principal.role == REGISTRANT:
        with rt.uow() as uow:  # counted even when the registration is refused
            sessions.limit(uow, f"register:{principal.phone_hash}", sessions.REGISTER_LIMITS)
            uow.commit()
    with rt.uow() as uow:
        member_id = register_member(cmd.values, uow, rt.sealer, principal)
        uow.commit()
        member = uow.session.get(Member, member_id)
        assert member is not None
        shown = member_out(member)
    if principal.role != REGISTRANT:
        return RegisteredOut(**shown.model_dump())
    session = SessionOut.model_validate(sessions.member_session(rt.settings, member_id))
    return RegisteredOut(**shown.model_dump(), session=session)


def read_unmasked(cmd: ReadMemberUnmasked, rt: Runtime) -> MemberOut:
    """The member with ID number and phone in clear, for admin and operator tokens only, each
    read leaving an audit row. A withdrawn member has nothing to unmask: the masked view."""
    principal = cmd.principal
    with rt.uow() as uow:
        member = visible_member(uow, cmd.member_id, principal)
        shown = member_out(member)
        if member.state != "active":
            return shown
        if principal.role not in ("admin", "operator"):
            raise Forbidden("only admin and operator tokens may read unmasked data")
        assert member.id_number_sealed and member.phone_sealed
        shown.id_number = rt.sealer.open(member.id_number_sealed, "id_number")
        shown.phone = rt.sealer.open(member.phone_sealed, "phone")
        uow.session.add(
            AuditEntry(
                at=uow.now(),
                token_id=principal.token_id,
                subject=principal.subject or None,
                role=principal.role,
                scope=principal.scope,
                action="read_unmasked",
                member_id=member.id,
            )
        )
        uow.commit()
        return shown


def update(cmd: UpdateMember, rt: Runtime) -> MemberOut:
    with rt.uow() as uow:
        member = editable_member(uow, cmd.member_id, cmd.principal)
        update_member(member, cmd.changes, uow, rt.sealer)
        uow.commit()
        return member_out(member)


def withdraw(cmd: WithdrawMember, rt: Runtime) -> MemberOut:
    with rt.uow() as uow:
        member = editable_member(uow, cmd.member_id, cmd.principal)
        withdraw_member(member, uow)
        uow.commit()
        return member_out(member)
