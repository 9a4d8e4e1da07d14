"""微心愿 over HTTP: community staff collect, review, publish and confirm wishes; members
claim, fulfil or give them back. Routes check who is calling and call :mod:`wishes`."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, or_, select

from services.pairing import runtime, wishes
from services.pairing.activities import confirmed_communities
from services.pairing.models import CommunityReplica, MemberReplica, Wish, WishClaim
from shared.auth import Forbidden, Principal, requires
from shared.db import UnitOfWork
from shared.http import Invalid, NotFound
from shared.runtime import Runtime

router = APIRouter(tags=["wishes"])
Rt = Annotated[Runtime, Depends(runtime)]
Staff = Annotated[Principal, Depends(requires(runtime, "admin", "operator", "community"))]
Reader = Annotated[
    Principal, Depends(requires(runtime, "admin", "operator", "community", "member"))
]
Member = Annotated[Principal, Depends(requires(runtime, "member"))]
Code = Annotated[str, Field(pattern=r"^\d{12}$")]
#: How far a list may be paged: far beyond any community's wishes, and small enough for
#: every database's OFFSET (PostgreSQL refuses one beyond a 64-bit integer with a 500).
MAX_OFFSET = 1_000_000


class WishIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    community_code: Code
    title: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    category: str | None = Field(default=None, max_length=40)
    beneficiary_category: str | None = Field(default=None, max_length=30)
    deadline: date | None = None


class ClaimIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    member_id: uuid.UUID


class ReasonIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: str = Field(min_length=1, max_length=500)


class OptionalReasonIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: str | None = Field(default=None, max_length=500)


class RatingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rating: int = Field(ge=1, le=5)


def _covers(principal: Principal, community_code: str) -> bool:
    return principal.covers(districts={community_code[:6]}, communities={community_code})


def _wish(uow: UnitOfWork, wish_id: uuid.UUID, principal: Principal) -> Wish:
    """The wish, or 404 when it is absent or out of the caller's sight."""
    wish = uow.session.get(Wish, wish_id)
    visible = wish is not None and (
        wish.state in wishes.PUBLIC
        if principal.role == "member"
        else _covers(principal, wish.community_code)
    )
    if wish is None or not visible:
        raise NotFound(f"no wish {wish_id}")
    return wish


def _view(uow: UnitOfWork, wish: Wish, principal: Principal) -> dict[str, Any]:
    last = wishes.latest_claim(wish, uow)
    return view(wish, last, principal)


def view(wish: Wish, last: WishClaim | None, principal: Principal) -> dict[str, Any]:
    """A wish with its latest claim; a member sees who claimed it only when it was them."""
    mine = last is not None and principal.scope == f"member:{last.member_id}"
    claim = None
    if last is not None:
        claim = {
            "id": str(last.id),
            "state": last.state,
            "member_id": str(last.member_id) if principal.role != "member" or mine else None,
            "claimed_at": last.claimed_at.isoformat(),
            "expires_at": last.expires_at.isoformat(),
            "closed_at": last.closed_at.isoformat() if last.closed_at else None,
        }
    return {
        "id": str(wish.id),
        "state": wish.state,
        "community_code": wish.community_code,
        "title": wish.title,
        "description": wish.description,
        "category": wish.category,
        "beneficiary_category": wish.beneficiary_category,
        "deadline": wish.deadline.isoformat() if wish.deadline else None,
        "reason": wish.reason,
        "rating": wish.rating,
        "claim": claim,
    }


def _act(
    rt: Runtime, wish_id: uuid.UUID, principal: Principal, action: Callable[[Wish, UnitOfWork], Any]
) -> dict[str, Any]:
    with rt.uow() as uow:
        wish = _wish(uow, wish_id, principal)
        action(wish, uow)
        uow.commit()
        return _view(uow, wish, principal)


def _self(principal: Principal) -> uuid.UUID:
    return uuid.UUID(principal.code)


@router.post("/wishes", status_code=201)
def collect_wish(body: WishIn, rt: Rt, principal: Staff) -> dict[str, Any]:
    """征集 — community staff record a resident's wish (state ``collected``)."""
    if not _covers(principal, body.community_code):
        raise NotFound(f"no community {body.community_code}")
    with rt.uow() as uow:
        community = uow.session.get(CommunityReplica, body.community_code)
        if community is None or (community.valid_to and community.valid_to < wishes.today(uow)):
            message = "not a current community of the directory"
            raise Invalid(message, [{"field": "community_code", "message": message}])
        wish = wishes.collect(wishes.WishIn(**body.model_dump()), uow)
        uow.commit()
        return view(wish, None, principal)


@router.get("/wishes")
def list_wishes(
    rt: Rt,
    principal: Reader,
    response: Response,
    community_code: Annotated[str | None, Query(pattern=r"^\d{12}$")] = None,
    state: Annotated[str | None, Query(max_length=20)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> list[dict[str, Any]]:
    """Wishes of a community (or of the caller's scope), newest first; ``X-Total-Count``
    says how many match."""
    query = select(Wish)
    if community_code is not None:
        if principal.role != "member" and not _covers(principal, community_code):
            raise NotFound(f"no community {community_code}")
        query = query.where(Wish.community_code == community_code)
    elif principal.kind in ("district", "community"):
        query = query.where(Wish.community_code.startswith(principal.code))
    if principal.role == "member":
        query = query.where(Wish.state.in_(wishes.PUBLIC))
    if state is not None:
        query = query.where(Wish.state == state)
    with rt.read() as uow:
        total = uow.session.scalar(select(func.count()).select_from(query.subquery())) or 0
        response.headers["X-Total-Count"] = str(total)
        rows = uow.session.scalars(
            query.order_by(Wish.created_at.desc(), Wish.id).limit(limit).offset(offset)
        ).all()
        latest: dict[uuid.UUID, WishClaim] = {}
        claims = select(WishClaim).where(WishClaim.wish_id.in_([w.id for w in rows]))
        for c in uow.session.scalars(claims.order_by(WishClaim.claimed_at)):
            latest[c.wish_id] = c
        return [view(w, latest.get(w.id), principal) for w in rows]


@router.get("/wishes/{wish_id}")
def read_wish(wish_id: uuid.UUID, rt: Rt, principal: Reader) -> dict[str, Any]:
    with rt.read() as uow:
        return _view(uow, _wish(uow, wish_id, principal), principal)


@router.post("/wishes/{wish_id}/submit")
def submit_wish(wish_id: uuid.UUID, rt: Rt, principal: Staff) -> dict[str, Any]:
    """Send a collected wish for review (待审核)."""
    return _act(rt, wish_id, principal, wishes.submit)


@router.post("/wishes/{wish_id}/publish")
def publish_wish(wish_id: uuid.UUID, rt: Rt, principal: Staff) -> dict[str, Any]:
    """发布 — members can see and claim it from now on. A reviewed wish, or a collected one
    straight away (staff who entered it themselves need not submit it first)."""
    return _act(rt, wish_id, principal, wishes.publish)


@router.post("/wishes/{wish_id}/reject")
def reject_wish(wish_id: uuid.UUID, body: ReasonIn, rt: Rt, principal: Staff) -> dict[str, Any]:
    return _act(rt, wish_id, principal, lambda w, uow: wishes.reject(w, body.reason, uow))


@router.post("/wishes/{wish_id}/withdraw")
def withdraw_wish(
    wish_id: uuid.UUID, rt: Rt, principal: Staff, body: OptionalReasonIn | None = None
) -> dict[str, Any]:
    """Take back a published wish nobody has claimed."""
    reason = body.reason if body else None
    return _act(rt, wish_id, principal, lambda w, uow: wishes.withdraw(w, reason, uow))


@router.post("/wishes/{wish_id}/claim")
def claim_wish(wish_id: uuid.UUID, body: ClaimIn, rt: Rt, principal: Reader) -> dict[str, Any]:
    """认领 — a member claims a wish of a community they are registered in; of concurrent
    claims exactly one succeeds, the others get 409."""
    if principal.role == "member" and body.member_id != _self(principal):
        raise Forbidden("a member may claim a wish only for themself")
    days = wishes.claim_days(rt.settings)
    return _act(rt, wish_id, principal, lambda w, uow: wishes.claim(w, body.member_id, uow, days))


@router.post("/wishes/{wish_id}/cancel")
def cancel_claim(wish_id: uuid.UUID, rt: Rt, principal: Member) -> dict[str, Any]:
    """The claiming member gives the wish back; it is published again."""
    member_id = _self(principal)
    return _act(rt, wish_id, principal, lambda w, uow: wishes.cancel(w, member_id, uow))


@router.post("/wishes/{wish_id}/revoke")
def revoke_claim(
    wish_id: uuid.UUID, rt: Rt, principal: Staff, body: OptionalReasonIn | None = None
) -> dict[str, Any]:
    """Staff take a claimed wish back from its member; it is published again."""
    reason = body.reason if body else None
    return _act(rt, wish_id, principal, lambda w, uow: wishes.revoke(w, reason, uow))


@router.post("/wishes/{wish_id}/fulfil")
def fulfil_wish(wish_id: uuid.UUID, rt: Rt, principal: Member) -> dict[str, Any]:
    """The claiming member reports the wish fulfilled."""
    member_id = _self(principal)
    return _act(rt, wish_id, principal, lambda w, uow: wishes.fulfil(w, member_id, uow))


@router.post("/wishes/{wish_id}/confirm")
def confirm_wish(wish_id: uuid.UUID, rt: Rt, principal: Staff) -> dict[str, Any]:
    """Staff confirm the fulfilment; the member's wish item of the five ones is filled."""
    return _act(rt, wish_id, principal, wishes.confirm)


@router.post("/wishes/{wish_id}/evaluate")
def evaluate_wish(wish_id: uuid.UUID, body: RatingIn, rt: Rt, principal: Staff) -> dict[str, Any]:
    """评价 — the community rates the fulfilled wish (1–5)."""
    return _act(rt, wish_id, principal, lambda w, uow: wishes.evaluate(w, body.rating, uow))


ROLE_SCORE = {"residence": 3, "unit": 2, "contact": 1}


def _recommend(
    uow: UnitOfWork, member: MemberReplica, limit: int
) -> list[tuple[Wish, int, dict[str, Any]]]:
    """Published wishes the member may claim, best match first (社区所需，党员所长).

    Score: the wish's category is one of the member's skills (+10); the member lives in the
    community (+3), works there (+2) or helps there (+1); the deadline is near (+2 within
    three days, +1 within a week). Ties: the nearer deadline, then the older wish.
    """
    communities = confirmed_communities(member)
    if not communities:
        return []
    day = wishes.today(uow)
    rows = uow.session.scalars(
        select(Wish)
        .where(
            Wish.state == "published",
            Wish.community_code.in_(communities),
            or_(Wish.deadline.is_(None), Wish.deadline >= day),
        )
        .order_by(Wish.created_at)
        .limit(5000)
    ).all()
    skills = set(member.skills)
    scored = []
    for wish in rows:
        role = communities[wish.community_code]
        days_left = (wish.deadline - day).days if wish.deadline else None
        score = (10 if wish.category in skills else 0) + ROLE_SCORE.get(role, 0)
        if days_left is not None:
            score += 2 if days_left <= 3 else 1 if days_left <= 7 else 0
        match = {"skill": wish.category if wish.category in skills else None, "community": role}
        scored.append((wish, score, {**match, "days_left": days_left}))
    scored.sort(key=lambda s: (-s[1], s[0].deadline or date.max, s[0].created_at))
    return scored[:limit]


@router.get("/members/{member_id}/wishes/recommended")
def recommended_wishes(
    member_id: uuid.UUID,
    rt: Rt,
    principal: Reader,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> list[dict[str, Any]]:
    """Published wishes the member may claim, best match first, with why they match."""
    with rt.read() as uow:
        member = uow.session.get(MemberReplica, member_id)
        codes = {c["code"] for c in member.communities} if member else set()
        if member is None or not principal.covers(
            districts={c[:6] for c in codes},
            units={member.unit_code},
            communities=codes,
            member=str(member_id),
        ):
            raise NotFound(f"no member {member_id}")
        ranked = _recommend(uow, member, limit)
        return [{**view(w, None, principal), "score": s, "match": m} for w, s, m in ranked]
