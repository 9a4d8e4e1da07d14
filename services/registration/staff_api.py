"""Registration's staff routes: operators, unit organisers, community staff and leaders get
accounts from the operator above them (:mod:`services.registration.staff` holds the rules).

Admin and operator tokens only; an account outside the caller's district answers 404, one
the caller sees but may not manage (an operator's colleague) 403. Phones and e-mails are
shown masked.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Query, Response, UploadFile
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from services.registration import runtime, staff
from services.registration.models import StaffAccount
from shared.auth import Forbidden, Principal, requires
from shared.db import UnitOfWork
from shared.http import Conflict, Invalid, NotFound
from shared.runtime import Runtime

# The including router (api.py) adds the /api/v1 prefix.
router = APIRouter(tags=["staff"])
Rt = Annotated[Runtime, Depends(runtime)]
Manager = Annotated[Principal, Depends(requires(runtime, "admin", "operator"))]
MAX_BYTES = 5 * 1024 * 1024


class StaffIn(BaseModel):
    """One staff account: ``POST /api/v1/staff``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(max_length=60)
    phone: str = Field(max_length=30)
    email: str | None = Field(default=None, max_length=254)
    role: str = Field(max_length=20)
    scope: str = Field(max_length=60)


def _account(uow: UnitOfWork, account_id: uuid.UUID, principal: Principal) -> StaffAccount:
    account = uow.session.get(StaffAccount, account_id)
    if account is None or not staff.visible(principal, account):
        raise NotFound(f"no staff account {account_id}")  # out of scope looks like absent
    staff.check_may_manage(principal, account)
    return account


@router.post("/staff", status_code=201)
def create_staff(body: StaffIn, rt: Rt, principal: Manager, response: Response) -> dict[str, Any]:
    """Create a staff account; 409 when this phone already has the role in this scope."""
    with rt.uow() as uow:
        values, errors = staff.validate(
            body.model_dump(), staff.Places(uow.session), uow.now().date()
        )
        if values is None:
            raise Invalid("the staff account cannot be created", errors)
        reason = staff.refusal(principal, values.role, values.scope, values.district)
        if reason is not None:
            raise Forbidden(reason)
        found = staff.existing(uow, rt.sealer, values)
        if found is not None:
            raise Conflict(
                f"this phone already has a {values.role} account for {values.scope}",
                id=str(found.id),
                state=found.state,
            )
        account = staff.create(uow, rt.sealer, values)
        staff.publish_saved(
            uow, rt.sealer, account, rt.settings.district, (values.phone, values.email)
        )
        uow.commit()
        response.headers["Location"] = f"/api/v1/staff/{account.id}"
        return staff.view(account, rt.sealer)


@router.post("/staff/import")
def import_staff(
    rt: Rt,
    principal: Manager,
    file: Annotated[UploadFile, File(description="xlsx, or CSV in UTF-8 or GBK")],
) -> dict[str, Any]:
    """Create or update many accounts from one file (姓名, 手机号, 电子邮箱, 角色, 范围).
    Good rows land even when others are rejected (listed with their row numbers, the
    header being row 1); uploading the same file again changes nothing."""
    data = file.file.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise Invalid("the file is too large", [{"field": "file", "message": "over 5 MB"}])
    result = staff.import_file(data, rt.uow, rt.sealer, principal, rt.settings.district)
    return result.answer()


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
) -> list[dict[str, Any]]:
    """Staff accounts in the caller's scope (masked), by role and scope; the number that
    match is in ``X-Total-Count``."""
    query = select(StaffAccount)
    if principal.role != "admin":
        query = query.where(StaffAccount.district_code == principal.code)
    if role is not None:
        query = query.where(StaffAccount.role == role)
    if scope is not None:
        query = query.where(StaffAccount.scope == scope)
    if state is not None:
        query = query.where(StaffAccount.state == state)
    with rt.read() as uow:
        total = uow.session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = uow.session.scalars(
            query.order_by(StaffAccount.scope, StaffAccount.role, StaffAccount.id)
            .limit(limit)
            .offset(offset)
        )
        response.headers["X-Total-Count"] = str(total)
        return [staff.view(a, rt.sealer) for a in rows]


@router.get("/staff/{account_id}")
def read_staff(account_id: uuid.UUID, rt: Rt, principal: Manager) -> dict[str, Any]:
    with rt.read() as uow:
        account = uow.session.get(StaffAccount, account_id)
        if account is None or not staff.visible(principal, account):
            raise NotFound(f"no staff account {account_id}")
        return staff.view(account, rt.sealer)


@router.post("/staff/{account_id}/disable")
def disable_staff(account_id: uuid.UUID, rt: Rt, principal: Manager) -> dict[str, Any]:
    """Disable an account: its sessions stop working at once, notify stops sending to it.
    Disabling a disabled account changes nothing."""
    with rt.uow() as uow:
        account = _account(uow, account_id, principal)
        staff.disable(uow, account, rt.settings.district)
        uow.commit()
        return staff.view(account, rt.sealer)


@router.post("/staff/{account_id}/enable")
def enable_staff(account_id: uuid.UUID, rt: Rt, principal: Manager) -> dict[str, Any]:
    """Enable a disabled account again (its person signs in anew)."""
    with rt.uow() as uow:
        account = _account(uow, account_id, principal)
        staff.enable(uow, rt.sealer, account, rt.settings.district)
        uow.commit()
        return staff.view(account, rt.sealer)
