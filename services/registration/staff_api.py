"""Registration's staff routes: operators, unit organisers, community staff and leaders get
accounts from the operator above them (:mod:`services.registration.staff` holds the rules).

Admin and operator tokens only; an account outside the caller's district answers 404, one
the caller sees but may not manage (an operator's colleague) 403. Phones and e-mails are
shown masked.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, File, Query, Response, UploadFile

from services.registration import views
from services.registration.bootstrap import bus, runtime
from services.registration.commands import CreateStaff, DisableStaff, EnableStaff, ImportStaff
from services.registration.schemas import StaffImported, StaffIn, StaffOut
from shared.auth import Principal, requires
from shared.http import Invalid
from shared.messagebus import MessageBus
from shared.runtime import Runtime

# The including router (api.py) adds the /api/v1 prefix.
router = APIRouter(tags=["staff"])
Bus = Annotated[MessageBus[Runtime], Depends(bus)]
Rt = Annotated[Runtime, Depends(runtime)]
Manager = Annotated[Principal, Depends(requires(runtime, "admin", "operator"))]
MAX_BYTES = 5 * 1024 * 1024


@router.post("/staff", status_code=201)
def create_staff(body: StaffIn, bus: Bus, principal: Manager, response: Response) -> StaffOut:
    """Create a staff account; 409 when this phone already has the role in this scope."""
    account = bus.handle(CreateStaff(principal=principal, values=body.model_dump()))
    response.headers["Location"] = f"/api/v1/staff/{account.id}"
    return account


@router.post("/staff/import")
def import_staff(
    bus: Bus,
    principal: Manager,
    file: Annotated[UploadFile, File(description="xlsx, or CSV in UTF-8 or GBK")],
) -> StaffImported:
    """Create or update many accounts from one file (姓名, 手机号, 电子邮箱, 角色, 范围).
    Good rows land even when others are rejected (listed with their row numbers, the
    header being row 1); uploading the same file again changes nothing."""
    data = file.file.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise Invalid("the file is too large", [{"field": "file", "message": "over 5 MB"}])
    return bus.handle(ImportStaff(principal=principal, data=data))


@router.get("/staff")
def list_staff(
    rt: Rt,
    principal: Manager,
    response: Response,
    role: Annotated[str | None, Query(max_length=20)] = None,
    scope: Annotated[str | None, Query(max_length=60)] = None,
    state: Annotated[str | None, Query(pattern="^(active|disabled)$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> list[StaffOut]:
    """Staff accounts in the caller's scope (masked), by role and scope; the number that
    match is in ``X-Total-Count``."""
    total, accounts = views.staff_accounts(
        rt, principal, role=role, scope=scope, state=state, limit=limit, offset=offset
    )
    response.headers["X-Total-Count"] = str(total)
    return accounts


@router.get("/staff/{account_id}")
def read_staff(account_id: uuid.UUID, rt: Rt, principal: Manager) -> StaffOut:
    return views.staff_account(rt, principal, account_id)


@router.post("/staff/{account_id}/disable")
def disable_staff(account_id: uuid.UUID, bus: Bus, principal: Manager) -> StaffOut:
    """Disable an account: its sessions stop working at once, notify stops sending to it.
    Disabling a disabled account changes nothing."""
    return bus.handle(DisableStaff(principal=principal, account_id=account_id))


@router.post("/staff/{account_id}/enable")
def enable_staff(account_id: uuid.UUID, bus: Bus, principal: Manager) -> StaffOut:
    """Enable a disabled account again (its person signs in anew)."""
    return bus.handle(EnableStaff(principal=principal, account_id=account_id))
