"""A unit's members as its organiser manages them: full names (the organiser chases them
by name), masked phones, whether each is a leading cadre, and their registrations' states.

Registration owns ``/api/v1/directory/``; ``/api/v1/units/…`` belongs to pairing.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from services.registration import views
from services.registration.bootstrap import runtime
from services.registration.schemas import UnitMemberOut
from shared.auth import Principal, requires
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
) -> list[UnitMemberOut]:
    """The unit's active members, by name: ``id``, ``name`` (in full), ``phone`` (masked),
    ``is_leader_cadre`` and ``registrations`` (each with its community, role and state).
    Admin: any unit; operator: units in its district; unit: its own (another is 404).
    ``member_id`` (repeatable) keeps only those members. ``X-Total-Count``: how many match."""
    total, found = views.unit_members(rt, principal, code, limit, offset, member_id)
    response.headers["X-Total-Count"] = str(total)
    return found
