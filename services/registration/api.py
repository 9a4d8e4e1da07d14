"""Registration's HTTP routes: they validate input and call a handler, nothing more."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, EmailStr, Field

from services.registration import NAME, handlers, runtime
from services.registration.models import Member
from shared.http import NotFound, add_status_route
from shared.runtime import Runtime

router = APIRouter(prefix="/api/v1", tags=["registration"])
Rt = Annotated[Runtime, Depends(runtime)]


class MemberIn(BaseModel):
    """A member's own registration (双注册)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(max_length=60)
    id_number: str = Field(max_length=30)
    phone: str = Field(max_length=30)
    email: EmailStr | None = None
    unit_code: str = Field(min_length=1, max_length=40)
    residence_community_code: str = Field(pattern=r"^\d{12}$")
    skills: list[Annotated[str, Field(max_length=40)]] = Field(default=[], max_length=20)
    availability: list[str] = []
    is_leader_cadre: bool = False
    consent: bool


@router.post("/members", status_code=201)
def register_member(body: MemberIn, rt: Rt) -> dict[str, Any]:
    cmd = handlers.RegisterMember(
        name=body.name,
        id_number=body.id_number,
        phone=body.phone,
        email=body.email,
        unit_code=body.unit_code,
        residence_community_code=body.residence_community_code,
        skills=body.skills,
        is_leader_cadre=body.is_leader_cadre,
        consent=body.consent,
    )
    with rt.uow() as uow:
        member = handlers.register_member(cmd, uow, rt.sealer)
        uow.commit()
        view = handlers.member_view(member)
    return {**view, "state": "registered"}


@router.get("/members/{member_id}")
def read_member(member_id: uuid.UUID, rt: Rt) -> dict[str, Any]:
    with rt.uow() as uow:
        member = uow.session.get(Member, member_id)
        if member is None:
            raise NotFound(f"no member {member_id}")
        return handlers.member_view(member)


add_status_route(router, NAME, runtime, handlers.stats)
