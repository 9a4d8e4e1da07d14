"""Reading the directory: communities and units by code or by a word of their name.

Forms need them (a member picks a residence community and a unit; a community's QR link
names its community), so any signed-in caller may search them, a registrant included, and
anyone may read one community by its code. The directory holds no personal data: names and
codes of public bodies.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from services.registration import views
from services.registration.bootstrap import runtime
from services.registration.schemas import CommunityOut, UnitOut
from shared.auth import REGISTRANT, ROLES, Principal, requires
from shared.runtime import Runtime

router = APIRouter()
Rt = Annotated[Runtime, Depends(runtime)]
Reader = Annotated[Principal, Depends(requires(runtime, REGISTRANT, *ROLES))]
Words = Annotated[str, Query(max_length=40)]
Limit = Annotated[int, Query(ge=1, le=50)]
District = Annotated[str | None, Query(pattern=r"^41\d{4}$")]
CACHED = "private, max-age=300"


@router.get("/directory/communities")
def find_communities(
    rt: Rt,
    _who: Reader,
    response: Response,
    q: Words = "",
    district: District = None,
    limit: Limit = 20,
) -> list[CommunityOut]:
    """Open communities whose name or code contains ``q`` (all when empty), by code."""
    found = views.communities(rt, q, district, limit)
    response.headers["Cache-Control"] = CACHED
    return found


@router.get("/directory/communities/{code}")
def read_community(code: str, rt: Rt, response: Response) -> CommunityOut:
    """One community by its 12-digit code, open or closed. Anyone may ask: the name of a
    residents' committee is printed on its QR poster, and a person who scans it should see
    where they are reporting in before they sign in."""
    found = views.community(rt, code)
    response.headers["Cache-Control"] = CACHED
    return found


@router.get("/directory/units")
def find_units(
    rt: Rt,
    _who: Reader,
    response: Response,
    q: Words = "",
    district: District = None,
    limit: Limit = 20,
) -> list[UnitOut]:
    """Open units whose name or code contains ``q``, by code: the registration form's picker."""
    found = views.units(rt, q, district, limit)
    response.headers["Cache-Control"] = CACHED
    return found
