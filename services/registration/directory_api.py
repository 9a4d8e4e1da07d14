"""Reading the directory: communities and units by code or by a word of their name.

Forms need them (a member picks a residence community and a unit; a community's QR link
names its community), so any signed-in caller may search them, a registrant included, and
anyone may read one community by its code. The directory holds no personal data: names and
codes of public bodies.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from services.registration import runtime
from services.registration.models import Community, Division, Unit
from shared.auth import REGISTRANT, ROLES, Principal, requires
from shared.config import CAMPAIGN_TZ
from shared.http import NotFound
from shared.runtime import Runtime

router = APIRouter()
Rt = Annotated[Runtime, Depends(runtime)]
Reader = Annotated[Principal, Depends(requires(runtime, REGISTRANT, *ROLES))]
Words = Annotated[str, Query(max_length=40)]
Limit = Annotated[int, Query(ge=1, le=50)]
District = Annotated[str | None, Query(pattern=r"^41\d{4}$")]


def _open(valid_from: date | None, valid_to: date | None, today: date) -> bool:
    return (valid_from is None or valid_from <= today) and (valid_to is None or today <= valid_to)


def _names(session: Session, codes: set[str]) -> dict[str, str]:
    rows = session.execute(select(Division.code, Division.name).where(Division.code.in_(codes)))
    return {code: name for code, name in rows}


def community_view(c: Community, districts: dict[str, str], today: date) -> dict[str, Any]:
    return {
        "code": c.code,
        "name": c.name,
        "district_code": c.district_code,
        "district_name": districts.get(c.district_code),
        "street_name": districts.get(c.code[:9]),
        "phone": c.phone,
        "open": _open(c.valid_from, c.valid_to, today),
    }


def _today(rt: Runtime) -> date:
    return rt.clock.now().astimezone(CAMPAIGN_TZ).date()


def _like(words: str) -> str:
    escaped = words.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _open_matching(
    model: type[Community] | type[Unit], q: str, district: str | None, limit: int, today: date
) -> Select[Any]:
    """Open rows of ``model`` whose name or code contains ``q`` (all when empty), by code."""
    query = (
        select(model)
        .where(or_(model.valid_from.is_(None), model.valid_from <= today))
        .where(or_(model.valid_to.is_(None), model.valid_to >= today))
        .order_by(model.code)
        .limit(limit)
    )
    if q.strip():
        like = _like(q.strip())
        query = query.where(
            or_(model.name.like(like, escape="\\"), model.code.like(like, escape="\\"))
        )
    if district:
        query = query.where(model.district_code == district)
    return query


@router.get("/directory/communities")
def find_communities(
    rt: Rt,
    _who: Reader,
    response: Response,
    q: Words = "",
    district: District = None,
    limit: Limit = 20,
) -> list[dict[str, Any]]:
    """Open communities whose name or code contains ``q`` (all when empty), by code."""
    today = _today(rt)
    with rt.read() as uow:
        found = list(uow.session.scalars(_open_matching(Community, q, district, limit, today)))
        names = _names(uow.session, {c.district_code for c in found} | {c.code[:9] for c in found})
        response.headers["Cache-Control"] = "private, max-age=300"
        return [community_view(c, names, today) for c in found]


@router.get("/directory/communities/{code}")
def read_community(code: str, rt: Rt, response: Response) -> dict[str, Any]:
    """One community by its 12-digit code, open or closed. Anyone may ask: the name of a
    residents' committee is printed on its QR poster, and a person who scans it should see
    where they are reporting in before they sign in."""
    with rt.read() as uow:
        community = uow.session.get(Community, code)
        if community is None:
            raise NotFound(f"no community {code}")
        names = _names(uow.session, {community.district_code, community.code[:9]})
        response.headers["Cache-Control"] = "private, max-age=300"
        return community_view(community, names, _today(rt))


@router.get("/directory/units")
def find_units(
    rt: Rt,
    _who: Reader,
    response: Response,
    q: Words = "",
    district: District = None,
    limit: Limit = 20,
) -> list[dict[str, Any]]:
    """Open units whose name or code contains ``q``, by code: the registration form's picker."""
    with rt.read() as uow:
        units = uow.session.scalars(_open_matching(Unit, q, district, limit, _today(rt)))
        response.headers["Cache-Control"] = "private, max-age=300"
        return [
            {
                "code": u.code,
                "name": u.name,
                "level": u.level,
                "district_code": u.district_code,
                "community_code": u.community_code,
            }
            for u in units
        ]
