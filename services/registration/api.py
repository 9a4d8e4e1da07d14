"""Registration's HTTP routes: who may call, the request turned into a command for the bus
or a view call, the answer's model. Members and community registrations here; sign-in,
the directory, rosters, staff accounts, a unit's members and the vocabularies in their
own ``*_api`` modules, gathered into this router."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, File, Query, Response, UploadFile

from services.registration import (
    NAME,
    auth_api,
    directory_api,
    rosters_api,
    staff_api,
    unit_members_api,
    views,
    vocabulary_api,
)
from services.registration.bootstrap import bus, runtime
from services.registration.commands import (
    ConfirmRegistration,
    ConfirmRegistrations,
    LoadDirectory,
    ReadMemberUnmasked,
    RegisterMember,
    RejectRegistration,
    UpdateMember,
    WithdrawMember,
)
from services.registration.schemas import (
    CommunityRegistrationOut,
    ConfirmedOut,
    DirectoryLoaded,
    MemberIn,
    MemberOut,
    MemberPatch,
    Reason,
    RegisteredOut,
    RegistrationIds,
    RegistrationOut,
)
from shared.auth import REGISTRANT, Principal, add_status_route, requires
from shared.messagebus import MessageBus
from shared.runtime import Runtime

router = APIRouter(prefix="/api/v1", tags=["registration"])
Bus = Annotated[MessageBus[Runtime], Depends(bus)]
Rt = Annotated[Runtime, Depends(runtime)]
Staff = Annotated[Principal, Depends(requires(runtime, "admin", "operator", "community"))]
Anyone = Annotated[Principal, Depends(requires(runtime))]
Operator = Annotated[Principal, Depends(requires(runtime, "admin", "operator"))]
Registering = Annotated[
    Principal, Depends(requires(runtime, REGISTRANT, "admin", "operator", "unit", "community"))
]


@router.post(
    "/members", status_code=201, response_model=RegisteredOut, response_model_exclude_unset=True
)
def register_member(body: MemberIn, bus: Bus, principal: Registering) -> RegisteredOut:
    """双注册: a member registers themselves, with explicit consent, signed in with the phone
    they register (a registrant session: the answer carries their member session), or staff
    register a member in their scope. Every refusal that could tell who is registered is the
    same neutral 409; a verified phone may try a few times a day."""
    return bus.handle(RegisterMember(principal=principal, values=body.model_dump()))


@router.get("/members/{member_id}")
def read_member(
    member_id: uuid.UUID,
    rt: Rt,
    bus: Bus,
    principal: Anyone,
    unmasked: Annotated[bool, Query(description="admin/operator only; audited")] = False,
) -> MemberOut:
    if unmasked:
        return bus.handle(ReadMemberUnmasked(principal=principal, member_id=member_id))
    return views.member(rt, principal, member_id)


@router.patch("/members/{member_id}")
def update_member(
    member_id: uuid.UUID, body: MemberPatch, bus: Bus, principal: Anyone
) -> MemberOut:
    changes = body.model_dump(exclude_unset=True)
    return bus.handle(UpdateMember(principal=principal, member_id=member_id, changes=changes))


@router.delete("/members/{member_id}")
def withdraw_member(member_id: uuid.UUID, bus: Bus, principal: Anyone) -> MemberOut:
    """Withdrawal: personal data erased here, and in every service through the event."""
    return bus.handle(WithdrawMember(principal=principal, member_id=member_id))


@router.post("/registrations/{registration_id}/confirm")
def confirm_registration(registration_id: uuid.UUID, bus: Bus, principal: Staff) -> RegistrationOut:
    """报到确认 — community staff confirm that the member reported in."""
    return bus.handle(ConfirmRegistration(principal=principal, registration_id=registration_id))


@router.post("/registrations/confirm")
def confirm_registrations(body: RegistrationIds, bus: Bus, principal: Staff) -> ConfirmedOut:
    """Confirm many reports-in at once (a community's morning list), in one transaction.

    Each id is confirmed, or listed with why not (out of scope ids read as not found).
    """
    return bus.handle(ConfirmRegistrations(principal=principal, registration_ids=body.ids))


@router.post("/registrations/{registration_id}/reject")
def reject_registration(
    registration_id: uuid.UUID, body: Reason, bus: Bus, principal: Staff
) -> RegistrationOut:
    return bus.handle(
        RejectRegistration(principal=principal, registration_id=registration_id, reason=body.reason)
    )


@router.get("/registrations")
def list_registrations(
    rt: Rt,
    principal: Staff,
    response: Response,
    community_code: Annotated[str, Query(pattern=r"^\d{12}$")],
    state: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[CommunityRegistrationOut]:
    """A community's registrations (e.g. those waiting to be confirmed), oldest first, each
    with who it is for as staff need to see them: ``member_id``, ``name``, ``phone``
    (masked), ``unit_code`` and ``unit_name``. ``X-Total-Count`` says how many match."""
    total, rows = views.community_registrations(rt, principal, community_code, state, limit)
    response.headers["X-Total-Count"] = str(total)
    return rows


@router.post("/directory")
def load_directory(
    bus: Bus, principal: Operator, file: Annotated[UploadFile, File()]
) -> DirectoryLoaded:
    """Load a directory file (CSV or xlsx); loading it again changes nothing. An operator
    loads only its district's rows (a file with others is refused whole, 403)."""
    return bus.handle(LoadDirectory(principal=principal, data=file.file.read()))


add_status_route(router, NAME, runtime, views.stats)
router.include_router(auth_api.router)
router.include_router(directory_api.router)
router.include_router(rosters_api.router)
router.include_router(staff_api.router)
router.include_router(unit_members_api.router)
router.include_router(vocabulary_api.router)
