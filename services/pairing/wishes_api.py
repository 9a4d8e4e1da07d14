"""微心愿 over HTTP: community staff collect, review, publish and confirm wishes; members
claim, fulfil or give them back. Routes check the caller's role, hand a command to the bus
or read a view, and answer a model of :mod:`schemas`."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from services.pairing import bootstrap, views
from services.pairing.commands import (
    CancelClaim,
    ClaimWish,
    CollectWish,
    ConfirmWish,
    EvaluateWish,
    FulfilWish,
    PublishWish,
    RejectWish,
    RevokeClaim,
    SubmitWish,
    WithdrawWish,
)
from services.pairing.schemas import (
    ClaimIn,
    OptionalReasonIn,
    RatingIn,
    ReasonIn,
    RecommendedWishOut,
    WishIn,
    WishOut,
)
from shared.auth import Principal, requires
from shared.messagebus import MessageBus
from shared.runtime import Runtime

router = APIRouter(tags=["wishes"])
runtime = bootstrap.runtime
Rt = Annotated[Runtime, Depends(runtime)]
Bus = Annotated[MessageBus[Runtime], Depends(bootstrap.bus)]
Staff = Annotated[Principal, Depends(requires(runtime, "admin", "operator", "community"))]
Reader = Annotated[
    Principal, Depends(requires(runtime, "admin", "operator", "community", "member"))
]
Member = Annotated[Principal, Depends(requires(runtime, "member"))]
#: How far a list may be paged: far beyond any community's wishes, and small enough for
#: every database's OFFSET (PostgreSQL refuses one beyond a 64-bit integer with a 500).
MAX_OFFSET = 1_000_000


@router.post("/wishes", status_code=201)
def collect_wish(body: WishIn, bus: Bus, principal: Staff) -> WishOut:
    """征集 — community staff record a resident's wish (state ``collected``)."""
    return bus.handle(CollectWish(principal=principal, **body.model_dump()))


@router.get("/wishes")
def list_wishes(
    rt: Rt,
    principal: Reader,
    response: Response,
    community_code: Annotated[str | None, Query(pattern=r"^\d{12}$")] = None,
    state: Annotated[str | None, Query(max_length=20)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> list[WishOut]:
    """Wishes of a community (or of the caller's scope), newest first; ``X-Total-Count``
    says how many match."""
    page = views.list_wishes(rt, principal, community_code, state, limit, offset)
    response.headers["X-Total-Count"] = str(page.total)
    return page.items


@router.get("/wishes/{wish_id}")
def read_wish(wish_id: uuid.UUID, rt: Rt, principal: Reader) -> WishOut:
    return views.read_wish(rt, wish_id, principal)


@router.post("/wishes/{wish_id}/submit")
def submit_wish(wish_id: uuid.UUID, bus: Bus, principal: Staff) -> WishOut:
    """Send a collected wish for review (待审核)."""
    return bus.handle(SubmitWish(principal=principal, wish_id=wish_id))


@router.post("/wishes/{wish_id}/publish")
def publish_wish(wish_id: uuid.UUID, bus: Bus, principal: Staff) -> WishOut:
    """发布 — members can see and claim it from now on. A reviewed wish, or a collected one
    straight away (staff who entered it themselves need not submit it first)."""
    return bus.handle(PublishWish(principal=principal, wish_id=wish_id))


@router.post("/wishes/{wish_id}/reject")
def reject_wish(wish_id: uuid.UUID, body: ReasonIn, bus: Bus, principal: Staff) -> WishOut:
    return bus.handle(RejectWish(principal=principal, wish_id=wish_id, reason=body.reason))


@router.post("/wishes/{wish_id}/withdraw")
def withdraw_wish(
    wish_id: uuid.UUID, bus: Bus, principal: Staff, body: OptionalReasonIn | None = None
) -> WishOut:
    """Take back a published wish nobody has claimed."""
    reason = body.reason if body else None
    return bus.handle(WithdrawWish(principal=principal, wish_id=wish_id, reason=reason))


@router.post("/wishes/{wish_id}/claim")
def claim_wish(wish_id: uuid.UUID, body: ClaimIn, bus: Bus, principal: Reader) -> WishOut:
    """认领 — a member claims a wish of a community they are registered in; of concurrent
    claims exactly one succeeds, the others get 409."""
    command = ClaimWish(principal=principal, wish_id=wish_id, member_id=body.member_id)
    return bus.handle(command)


@router.post("/wishes/{wish_id}/cancel")
def cancel_claim(wish_id: uuid.UUID, bus: Bus, principal: Member) -> WishOut:
    """The claiming member gives the wish back; it is published again."""
    return bus.handle(CancelClaim(principal=principal, wish_id=wish_id))


@router.post("/wishes/{wish_id}/revoke")
def revoke_claim(
    wish_id: uuid.UUID, bus: Bus, principal: Staff, body: OptionalReasonIn | None = None
) -> WishOut:
    """Staff take a claimed wish back from its member; it is published again."""
    reason = body.reason if body else None
    return bus.handle(RevokeClaim(principal=principal, wish_id=wish_id, reason=reason))


@router.post("/wishes/{wish_id}/fulfil")
def fulfil_wish(wish_id: uuid.UUID, bus: Bus, principal: Member) -> WishOut:
    """The claiming member reports the wish fulfilled."""
    return bus.handle(FulfilWish(principal=principal, wish_id=wish_id))


@router.post("/wishes/{wish_id}/confirm")
def confirm_wish(wish_id: uuid.UUID, bus: Bus, principal: Staff) -> WishOut:
    """Staff confirm the fulfilment; the member's wish item of the five ones is filled."""
    return bus.handle(ConfirmWish(principal=principal, wish_id=wish_id))


@router.post("/wishes/{wish_id}/evaluate")
def evaluate_wish(wish_id: uuid.UUID, body: RatingIn, bus: Bus, principal: Staff) -> WishOut:
    """评价 — the community rates the fulfilled wish (1–5)."""
    return bus.handle(EvaluateWish(principal=principal, wish_id=wish_id, rating=body.rating))


@router.get("/members/{member_id}/wishes/recommended")
def recommended_wishes(
    member_id: uuid.UUID,
    rt: Rt,
    principal: Reader,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> list[RecommendedWishOut]:
    """Published wishes the member may claim, best match first, with why they match: the
    wish's category is one of their skills (+10), they live (+3), work (+2) or help (+1) in
    its community, its deadline is near (+2 within three days, +1 within a week)."""
    return views.recommended_wishes(rt, member_id, principal, limit)
