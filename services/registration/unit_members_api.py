"""A unit's members as its organiser manages them: full names (the organiser chases them
by name), masked phones, whether each is a leading cadre, and their registrations' states.

Registration owns ``/api/v1/directory/``; ``/api/v1/units/…`` belongs to pairing.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from services.registration import handlers, runtime
from services.registration.models import Member, Unit
from shared.auth import Principal, requires
from shared.http import NotFound
from shared.runtime import Runtime

router = APIRouter()
Rt = Annotated[Runtime, Depends(runtime)]
Manager = Annotated[Principal, Depends(requires(runtime, "admin", "operator", "unit"))]
UnitCode = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,40}$")]


@router.get("/directory/units/{code}/members")
def unit_members(
    code: UnitCode,
    rt: Rt,
    principal: Manager,
    response: Response,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: Annotated[int, Query(ge=0)] = 0,
    member_id: Annotated[list[uuid.UUID] | None, Query(max_length=1000)] = None,
) -> list[dict[str, Any]]:
    """The unit's active members, by name: ``id``, ``name`` (in full), ``phone`` (masked),
    ``is_leader_cadre`` and ``registrations`` (each with its community, role and state).
    Admin: any unit; operator: units in its district; unit: its own (another is 404).
    ``member_id`` (repeatable) keeps only those members. ``X-Total-Count``: how many match."""
    with rt.read() as uow:
        unit = uow.session.get(Unit, code)
        if unit is None or not principal.covers(districts={unit.district_code}, units={code}):
            raise NotFound(f"no unit {code}")  # out of scope looks like absent
        query = select(Member).where(Member.unit_code == code, Member.state == "active")
        if member_id:
            query = query.where(Member.id.in_(member_id))
        total = uow.session.scalar(select(func.count()).select_from(query.subquery())) or 0
        response.headers["X-Total-Count"] = str(total)
        members = uow.session.scalars(
            query.options(selectinload(Member.registrations))
            .order_by(Member.name, Member.id)
            .limit(limit)
            .offset(offset)
        )
        return [
            {
                "id": str(m.id),
                "name": m.name,
                "phone": m.phone_masked,
                "is_leader_cadre": m.is_leader_cadre,
                "registrations": [handlers.registration_view(r) for r in m.registrations],
            }
            for m in members
        ]
