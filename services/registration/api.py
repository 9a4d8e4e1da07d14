"""Registration's HTTP routes: they check who is calling, validate, and call a handler."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Query, Response, UploadFile
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from services.registration import (
    NAME,
    auth_api,
    directory,
    directory_api,
    handlers,
    registrations,
    rosters_api,
    runtime,
    sessions,
    staff_api,
    unit_members_api,
    vocabulary_api,
)
from services.registration.models import AuditEntry, CommunityRegistration, Member, Unit
from shared.auth import REGISTRANT, Forbidden, Principal, add_status_route, requires
from shared.db import UnitOfWork
from shared.http import NotFound
from shared.runtime import Runtime

router = APIRouter(prefix="/api/v1", tags=["registration"])
Rt = Annotated[Runtime, Depends(runtime)]
Staff = Annotated[Principal, Depends(requires(runtime, "admin", "operator", "community"))]
Anyone = Annotated[Principal, Depends(requires(runtime))]
Operator = Annotated[Principal, Depends(requires(runtime, "admin", "operator"))]
Registering = Annotated[
    Principal, Depends(requires(runtime, REGISTRANT, "admin", "operator", "unit", "community"))
]


class MemberIn(BaseModel):
    """A member's own registration (双注册)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(max_length=60)
    id_number: str = Field(max_length=30)
    phone: str = Field(max_length=30)
    email: str | None = Field(default=None, max_length=254)
    unit_code: str = Field(min_length=1, max_length=40)
    residence_community_code: str = Field(max_length=20)  # typed with spaces or dashes
    skills: list[Annotated[str, Field(max_length=40)]] = Field(default=[], max_length=20)
    availability: list[str] = Field(default=[], max_length=5)
    is_leader_cadre: bool = False
    consent: bool = False


class MemberPatch(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    phone: str | None = Field(default=None, max_length=30)
    email: str | None = Field(default=None, max_length=254)
    skills: list[str] | None = Field(default=None, max_length=20)
    availability: list[str] | None = Field(default=None, max_length=5)
    residence_community_code: str | None = Field(default=None, max_length=20)


class Reason(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


def _member_in_scope(member: Member, principal: Principal, unit: Unit | None) -> bool:
    return principal.covers(
        districts={r.district_code for r in member.registrations}
        | ({unit.district_code} if unit else set()),
        units={member.unit_code},
        communities={r.community_code for r in member.registrations},
        member=str(member.id),
    )


def _load_member(uow: UnitOfWork, member_id: uuid.UUID, principal: Principal) -> Member:
    member = uow.session.get(Member, member_id)
    if member is None or principal.role == "leader":
        raise NotFound(f"no member {member_id}")
    if not _member_in_scope(member, principal, uow.session.get(Unit, member.unit_code)):
        raise NotFound(f"no member {member_id}")  # out of scope looks like absent
    return member


def _editable_member(uow: UnitOfWork, member_id: uuid.UUID, principal: Principal) -> Member:
    """Out of scope: 404. In scope, but the role may only read: 403."""
    member = _load_member(uow, member_id, principal)
    if member.state != "active":
        raise NotFound(f"no member {member_id}")
    if principal.role not in ("admin", "operator", "member"):
        raise Forbidden(f"a {principal.role} token may read this member, not change it")
    return member


@router.post("/members", status_code=201)
def register_member(body: MemberIn, rt: Rt, principal: Registering) -> dict[str, Any]:
    """双注册: a member registers themselves, with explicit consent, signed in with the phone
    they register (a registrant session: the answer carries their member session), or staff
    register a member in their scope. Every refusal that could tell who is registered is the
    same neutral 409; a verified phone may try a few times a day."""
    if principal.role == REGISTRANT:
        with rt.uow() as uow:  # counted even when the registration is refused
            key = f"register:{principal.phone_hash}"
            sessions.limit(uow, key, sessions.REGISTER_LIMITS)
            uow.commit()
    with rt.uow() as uow:
        member_id = handlers.register_member(body.model_dump(), uow, rt.sealer, principal)
        uow.commit()
        member = uow.session.get(Member, member_id)
        assert member is not None
        view = handlers.member_view(member)
    if principal.role == REGISTRANT:
        view["session"] = sessions.member_session(rt.settings, member_id)
    return view


@router.get("/members/{member_id}")
def read_member(
    member_id: uuid.UUID,
    rt: Rt,
    principal: Anyone,
    unmasked: Annotated[bool, Query(description="admin/operator only; audited")] = False,
) -> dict[str, Any]:
    with rt.uow() as uow:
        member = _load_member(uow, member_id, principal)
        view = handlers.member_view(member)
        if unmasked and member.state == "active":
            if principal.role not in ("admin", "operator"):
                raise Forbidden("only admin and operator tokens may read unmasked data")
            assert member.id_number_sealed and member.phone_sealed
            view["id_number"] = rt.sealer.open(member.id_number_sealed, "id_number")
            view["phone"] = rt.sealer.open(member.phone_sealed, "phone")
            uow.session.add(
                AuditEntry(
                    at=uow.now(),
                    token_id=principal.token_id,
                    role=principal.role,
                    scope=principal.scope,
                    action="read_unmasked",
                    member_id=member.id,
                )
            )
            uow.commit()
        return view


@router.patch("/members/{member_id}")
def update_member(
    member_id: uuid.UUID, body: MemberPatch, rt: Rt, principal: Anyone
) -> dict[str, Any]:
    with rt.uow() as uow:
        member = _editable_member(uow, member_id, principal)
        handlers.update_member(member, body.model_dump(exclude_unset=True), uow, rt.sealer)
        uow.commit()
        return handlers.member_view(member)


@router.delete("/members/{member_id}")
def withdraw_member(member_id: uuid.UUID, rt: Rt, principal: Anyone) -> dict[str, Any]:
    """Withdrawal: personal data erased here, and in every service through the event."""
    with rt.uow() as uow:
        member = _editable_member(uow, member_id, principal)
        handlers.withdraw_member(member, uow)
        uow.commit()
        return handlers.member_view(member)


def _registration(
    uow: UnitOfWork, registration_id: uuid.UUID, principal: Principal
) -> CommunityRegistration:
    reg = uow.session.get(CommunityRegistration, registration_id)
    if reg is None or not principal.covers(
        districts={reg.district_code}, communities={reg.community_code}
    ):
        raise NotFound(f"no registration {registration_id}")
    return reg


@router.post("/registrations/{registration_id}/confirm")
def confirm_registration(registration_id: uuid.UUID, rt: Rt, principal: Staff) -> dict[str, Any]:
    """报到确认 — community staff confirm that the member reported in."""
    with rt.uow() as uow:
        reg = _registration(uow, registration_id, principal)
        registrations.move(reg, "confirmed", uow)
        uow.commit()
        return handlers.registration_view(reg)


class RegistrationIds(BaseModel):
    ids: list[uuid.UUID] = Field(min_length=1, max_length=5000)


@router.post("/registrations/confirm")
def confirm_registrations(body: RegistrationIds, rt: Rt, principal: Staff) -> dict[str, Any]:
    """Confirm many reports-in at once (a community's morning list), in one transaction.

    Each id is confirmed, or listed with why not (out of scope ids read as not found).
    """
    confirmed: list[str] = []
    refused: list[dict[str, str]] = []
    with rt.uow() as uow:
        rows = uow.session.scalars(
            select(CommunityRegistration).where(CommunityRegistration.id.in_(body.ids))
        )
        found = {r.id: r for r in rows}
        for reg_id in body.ids:
            reg = found.get(reg_id)
            if reg is None or not principal.covers(
                districts={reg.district_code}, communities={reg.community_code}
            ):
                refused.append({"id": str(reg_id), "reason": "not found"})
            elif reg.state != "submitted":
                refused.append({"id": str(reg_id), "reason": f"already {reg.state}"})
            else:
                registrations.move(reg, "confirmed", uow)
                confirmed.append(str(reg_id))
        uow.commit()
    return {"confirmed": len(confirmed), "refused": refused}


@router.post("/registrations/{registration_id}/reject")
def reject_registration(
    registration_id: uuid.UUID, body: Reason, rt: Rt, principal: Staff
) -> dict[str, Any]:
    with rt.uow() as uow:
        reg = _registration(uow, registration_id, principal)
        registrations.move(reg, "rejected", uow, reason=body.reason)
        uow.commit()
        return handlers.registration_view(reg)


@router.get("/registrations")
def list_registrations(
    rt: Rt,
    principal: Staff,
    response: Response,
    community_code: Annotated[str, Query(pattern=r"^\d{12}$")],
    state: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    """A community's registrations (e.g. those waiting to be confirmed), oldest first, each
    with who it is for as staff need to see them: ``member_id``, ``name``, ``phone``
    (masked), ``unit_code`` and ``unit_name``. ``X-Total-Count`` says how many match."""
    if not principal.covers(districts={community_code[:6]}, communities={community_code}):
        raise NotFound(f"no community {community_code}")
    query = select(CommunityRegistration).where(
        CommunityRegistration.community_code == community_code
    )
    if state:
        query = query.where(CommunityRegistration.state == state)
    with rt.read() as uow:
        total = uow.session.scalar(select(func.count()).select_from(query.subquery())) or 0
        response.headers["X-Total-Count"] = str(total)
        rows = uow.session.execute(
            query.add_columns(Member.name, Member.phone_masked, Member.unit_code, Unit.name)
            .join(Member, Member.id == CommunityRegistration.member_id)
            .outerjoin(Unit, Unit.code == Member.unit_code)
            .order_by(CommunityRegistration.created_at, CommunityRegistration.id)
            .limit(limit)
        )
        return [
            handlers.registration_view(r)
            | {
                "member_id": str(r.member_id),
                "name": name,
                "phone": phone,
                "unit_code": unit_code,
                "unit_name": unit_name,
            }
            for r, name, phone, unit_code, unit_name in rows
        ]


@router.post("/directory")
def load_directory(
    rt: Rt, principal: Operator, file: Annotated[UploadFile, File()]
) -> dict[str, int]:
    """Load a directory file (CSV or xlsx); loading it again changes nothing. An operator
    loads only its district's rows (a file with others is refused whole, 403)."""
    data = file.file.read()
    with rt.uow() as uow:
        counts = directory.load(data, uow, principal)
        uow.commit()
    return counts


add_status_route(router, NAME, runtime, handlers.stats)
router.include_router(auth_api.router)
router.include_router(directory_api.router)
router.include_router(rosters_api.router)
router.include_router(staff_api.router)
router.include_router(unit_members_api.router)
router.include_router(vocabulary_api.router)
