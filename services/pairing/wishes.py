"""微心愿 — micro-wishes and their claims, two state machines (docs/domain.md).

Wish: collected → pending_review → published | rejected (staff who collect a wish may also
publish it at once: collected → published); published → claimed | withdrawn
(only while unclaimed) | expired; claimed → published (the claim was cancelled, revoked or
expired) | fulfilled; fulfilled → confirmed → evaluated.
Claim: active → realized | cancelled | revoked | expired.

A move is a compare-and-set on the row's current state (:func:`activities.cas`), so racing
requests cannot both move a wish. Of concurrent claims exactly one commits: the partial
unique index on active claims refuses the others at insert — no check-then-write. Wish and
claim change in one transaction, with the event each move causes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from services.pairing.access import covers
from services.pairing.activities import (
    cas,
    confirmed_communities,
    record_automatic,
    registered_member,
)
from services.pairing.models import CommunityReplica, MemberReplica, Wish, WishClaim
from shared.auth import Forbidden, Principal
from shared.config import CAMPAIGN_TZ, Settings
from shared.db import UnitOfWork
from shared.events import (
    WishChanged,
    WishClaimed,
    WishCollected,
    WishConfirmed,
    WishEvaluated,
    WishExpired,
    WishFulfilled,
    WishPublished,
    WishRejected,
    WishReleased,
    WishSubmitted,
    WishWithdrawn,
)
from shared.http import Conflict, Invalid, NotFound
from shared.pii import redact
from shared.runtime import Runtime

TRANSITIONS: dict[str, tuple[str, ...]] = {
    "collected": ("pending_review", "published"),
    "pending_review": ("published", "rejected"),
    "published": ("claimed", "withdrawn", "expired"),
    "claimed": ("published", "fulfilled"),
    "fulfilled": ("confirmed",),
    "confirmed": ("evaluated",),
    "rejected": (),
    "withdrawn": (),
    "expired": (),
    "evaluated": (),
}
CLAIM_TRANSITIONS: dict[str, tuple[str, ...]] = {
    "active": ("realized", "cancelled", "revoked", "expired"),
    "realized": (),
    "cancelled": (),
    "revoked": (),
    "expired": (),
}
#: States a member may see: the wish has been published at some point.
PUBLIC = ("published", "claimed", "fulfilled", "confirmed", "evaluated", "expired", "withdrawn")
#: Acts whose target state can be reached from more than one state: where each may start
#: (publishing a collected or reviewed wish; releasing a claimed one).
EVENT_FROM: dict[type[WishChanged], tuple[str, ...]] = {
    WishPublished: ("collected", "pending_review"),
    WishReleased: ("claimed",),
}


def claim_days(settings: Settings) -> int:
    """Days a claim stays active without fulfilment (``SERVICEMONTH_PAIRING_CLAIM_DAYS``)."""
    return settings.pairing.claim_days


def today(uow: UnitOfWork) -> date:
    return uow.now().astimezone(CAMPAIGN_TZ).date()


@dataclass(frozen=True)
class WishIn:
    """A wish as community staff collect it (征集)."""

    community_code: str
    title: str
    description: str | None = None
    category: str | None = None
    beneficiary_category: str | None = None
    deadline: date | None = None


def find(uow: UnitOfWork, wish_id: uuid.UUID, principal: Principal) -> Wish:
    """The wish, or 404 when it is absent or out of the caller's sight (a member sees
    only wishes that have been published; staff those of their scope)."""
    wish = uow.session.get(Wish, wish_id)
    visible = wish is not None and (
        wish.state in PUBLIC
        if principal.role == "member"
        else covers(principal, wish.community_code)
    )
    if wish is None or not visible:
        raise NotFound(f"no wish {wish_id}")
    return wish


def collect(data: WishIn, uow: UnitOfWork) -> Wish:
    """Record a collected wish in a current community of the directory; its deadline may
    not lie in the past."""
    community = uow.session.get(CommunityReplica, data.community_code)
    if community is None or (community.valid_to and community.valid_to < today(uow)):
        message = "not a current community of the directory"
        raise Invalid(message, [{"field": "community_code", "message": message}])
    if data.deadline is not None and data.deadline < today(uow):
        raise Invalid("bad deadline", [{"field": "deadline", "message": "is in the past"}])
    typed = {"title": redact(data.title), "description": kept(data.description)}
    wish = Wish(**(vars(data) | typed), state="collected", created_at=uow.now())
    uow.session.add(wish)
    uow.session.flush()
    _emit(wish, WishCollected, uow)
    return wish


def kept(text: str | None) -> str | None:
    """Words people typed (a wish, a reason) as they are kept and sent on: any ID number,
    mobile or e-mail in them masked (:func:`shared.pii.redact`), never stored in clear."""
    return redact(text) if text else text


def move(
    wish: Wish,
    to: str,
    uow: UnitOfWork,
    *,
    event: type[WishChanged],
    claim: WishClaim | None = None,
    reason: str | None = None,
) -> None:
    """Move ``wish`` to ``to`` and emit ``event``; 409 with what is allowed if not.

    ``published`` is reached by two different acts (publishing a collected or reviewed
    wish, releasing a claimed one), so the act says which states it may start from.
    """
    allow(wish, to, EVENT_FROM.get(event))
    if not cas(uow, Wish, wish.id, wish.state, state=to, updated_at=uow.now()):
        uow.session.refresh(wish)
        raise Conflict(
            "the wish changed meanwhile; read it again",
            state=wish.state,
            allowed=list(TRANSITIONS[wish.state]),
        )
    _emit(wish, event, uow, claim=claim, reason=kept(reason))


def allow(wish: Wish, to: str, starts: tuple[str, ...] | None = None) -> None:
    """Refuse (409, with the current state and what it may become) a move not in the table."""
    allowed = TRANSITIONS[wish.state]
    if to not in allowed or (starts is not None and wish.state not in starts):
        raise Conflict(
            f"a {wish.state} wish cannot become {to}", state=wish.state, allowed=list(allowed)
        )


def submit(wish: Wish, uow: UnitOfWork) -> None:
    move(wish, "pending_review", uow, event=WishSubmitted)


def publish(wish: Wish, uow: UnitOfWork) -> None:
    """发布 — a reviewed wish, or one staff collected themselves (one step)."""
    if wish.state in EVENT_FROM[WishPublished] and wish.deadline and wish.deadline < today(uow):
        raise Invalid("bad deadline", [{"field": "deadline", "message": "has passed"}])
    move(wish, "published", uow, event=WishPublished)


def reject(wish: Wish, reason: str, uow: UnitOfWork) -> None:
    move(wish, "rejected", uow, event=WishRejected, reason=reason)
    wish.reason = kept(reason)


def withdraw(wish: Wish, reason: str | None, uow: UnitOfWork) -> None:
    """Only an unclaimed (published) wish can be withdrawn."""
    move(wish, "withdrawn", uow, event=WishWithdrawn, reason=reason)
    wish.reason = kept(reason)


def claim(wish: Wish, member_id: uuid.UUID, uow: UnitOfWork, days: int) -> WishClaim:
    """认领 — the member claims the wish; of concurrent claims exactly one wins."""
    allow(wish, "claimed")
    if wish.deadline is not None and wish.deadline < today(uow):
        raise Conflict("the wish's deadline has passed", state=wish.state, allowed=["expired"])
    registered_member(uow, member_id, wish.community_code)
    now = uow.now()
    new = WishClaim(
        wish_id=wish.id,
        member_id=member_id,
        state="active",
        claimed_at=now,
        expires_at=now + timedelta(days=days),
    )
    uow.session.add(new)
    try:
        uow.session.flush()  # the partial unique index decides who wins
    except IntegrityError:
        raise Conflict(
            "another member has claimed this wish",
            state="claimed",
            allowed=["published", "fulfilled"],
        ) from None
    move(wish, "claimed", uow, event=WishClaimed, claim=new)
    return new


def active_claim(wish: Wish, uow: UnitOfWork) -> WishClaim | None:
    return uow.session.scalar(
        select(WishClaim).where(WishClaim.wish_id == wish.id, WishClaim.state == "active")
    )


def latest_claim(wish: Wish, uow: UnitOfWork) -> WishClaim | None:
    return uow.session.scalar(
        select(WishClaim)
        .where(WishClaim.wish_id == wish.id)
        .order_by(WishClaim.claimed_at.desc(), WishClaim.id)
        .limit(1)
    )


def held_claim(wish: Wish, uow: UnitOfWork) -> WishClaim:
    """The wish's active claim, or 409 saying what became of the last one."""
    current = active_claim(wish, uow)
    if current is None:
        last = latest_claim(wish, uow)
        raise Conflict(
            f"the {wish.state} wish has no active claim",
            state=wish.state,
            allowed=list(TRANSITIONS[wish.state]),
            claim_state=last.state if last else None,
        )
    return current


def release(
    wish: Wish, held: WishClaim, to: str, uow: UnitOfWork, reason: str | None = None
) -> None:
    """The claim ends (cancelled, revoked or expired) and the wish is published again."""
    if to not in CLAIM_TRANSITIONS[held.state]:
        raise Conflict(f"a {held.state} claim cannot become {to}", state=held.state, allowed=[])
    move(wish, "published", uow, event=WishReleased, claim=held, reason=reason or to)
    _close(held, to, uow)


def cancel(wish: Wish, member_id: uuid.UUID, uow: UnitOfWork) -> None:
    """The claiming member gives the wish back."""
    release(wish, _claimer(wish, member_id, "cancel", uow), "cancelled", uow)


def revoke(wish: Wish, reason: str | None, uow: UnitOfWork) -> None:
    """Staff take the wish back from the member who claimed it."""
    release(wish, held_claim(wish, uow), "revoked", uow, reason)


def fulfil(wish: Wish, member_id: uuid.UUID, uow: UnitOfWork) -> None:
    """The claiming member says the wish is done (实现); staff confirm it next."""
    allow(wish, "fulfilled")
    held = _claimer(wish, member_id, "fulfil", uow)
    move(wish, "fulfilled", uow, event=WishFulfilled, claim=held)


def _claimer(wish: Wish, member_id: uuid.UUID, action: str, uow: UnitOfWork) -> WishClaim:
    held = held_claim(wish, uow)
    if held.member_id != member_id:
        raise Forbidden(f"only the member who claimed the wish may {action} it")
    return held


def confirm(wish: Wish, uow: UnitOfWork) -> None:
    """Staff confirm the fulfilment: the claim is realized, the member's wish item filled."""
    allow(wish, "confirmed")
    held = held_claim(wish, uow)
    move(wish, "confirmed", uow, event=WishConfirmed, claim=held)
    _close(held, "realized", uow)
    record_automatic(uow, held.member_id, "wish", wish.community_code, held.id)


def evaluate(wish: Wish, rating: int, uow: UnitOfWork) -> None:
    move(wish, "evaluated", uow, event=WishEvaluated, reason=f"rating {rating}")
    wish.rating = rating


def _close(held: WishClaim, to: str, uow: UnitOfWork) -> None:
    if not cas(uow, WishClaim, held.id, "active", state=to, closed_at=uow.now()):
        raise Conflict("the claim changed meanwhile; read it again", state=held.state)


def sweep(uow: UnitOfWork, limit: int = 500) -> dict[str, int]:
    """Claims past their time go back (the wish is published again), then published wishes
    past their deadline expire. Returns how many of each; run it until both are below
    ``limit``."""
    due = uow.session.execute(
        select(WishClaim, Wish)
        .join(Wish, Wish.id == WishClaim.wish_id)
        .where(
            WishClaim.state == "active",
            WishClaim.expires_at <= uow.now(),
            Wish.state == "claimed",
        )
        .limit(limit)
    ).all()
    released = 0
    for held, wish in due:
        try:
            release(wish, held, "expired", uow)
            released += 1
        except Conflict:
            continue  # the member fulfilled or cancelled it a moment ago
    late = uow.session.scalars(
        select(Wish).where(Wish.state == "published", Wish.deadline < today(uow)).limit(limit)
    ).all()
    expired = 0
    for wish in late:
        try:
            move(wish, "expired", uow, event=WishExpired, reason="deadline passed")
            expired += 1
        except Conflict:
            continue
    return {"claims_expired": released, "wishes_expired": expired}


def _emit(
    wish: Wish,
    event: type[WishChanged],
    uow: UnitOfWork,
    claim: WishClaim | None = None,
    reason: str | None = None,
) -> None:
    uow.emit(
        event(
            wish_id=wish.id,
            community_code=wish.community_code,
            title=wish.title,
            state=wish.state,
            member_id=claim.member_id if claim else None,
            claim_id=claim.id if claim else None,
            reason=reason,
            deadline=wish.deadline,
            claim_expires_at=claim.expires_at if claim else None,
        ),
        district=wish.community_code[:6],
    )


def sweep_all(rt: Runtime, batch: int = 500) -> dict[str, int]:
    """:func:`sweep` in transactions of ``batch`` until nothing is due."""
    total = {"claims_expired": 0, "wishes_expired": 0}
    while True:
        with rt.uow() as uow:
            counts = sweep(uow, batch)
            uow.commit()
        for key, value in counts.items():
            total[key] += value
        if max(counts.values()) < batch:
            return total


def release_held_by(member_id: uuid.UUID, uow: UnitOfWork, reason: str) -> None:
    """Every wish the member holds goes back to the community (published again)."""
    held = uow.session.scalars(
        select(WishClaim).where(WishClaim.member_id == member_id, WishClaim.state == "active")
    ).all()
    for claim in held:
        wish = uow.session.get(Wish, claim.wish_id)
        if wish is not None and wish.state == "claimed":
            move(wish, "published", uow, event=WishReleased, reason=reason)


#: How much the member's role in the wish's community counts (社区所需，党员所长).
ROLE_SCORE = {"residence": 3, "unit": 2, "contact": 1}


@dataclass(frozen=True)
class Recommendation:
    """A wish the member may claim, how well it suits them, and why."""

    wish: Wish
    score: int
    skill: str | None
    community: str
    days_left: int | None


def recommend(uow: UnitOfWork, member: MemberReplica, limit: int) -> list[Recommendation]:
    """Published wishes the member may claim, best match first (社区所需，党员所长).

    Score: the wish's category is one of the member's skills (+10); the member lives in the
    community (+3), works there (+2) or helps there (+1); the deadline is near (+2 within
    three days, +1 within a week). Ties: the nearer deadline, then the older wish.
    """
    communities = confirmed_communities(member)
    if not communities:
        return []
    day = today(uow)
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
        skill = wish.category if wish.category in skills else None
        scored.append(Recommendation(wish, score, skill, role, days_left))
    scored.sort(key=lambda r: (-r.score, r.wish.deadline or date.max, r.wish.created_at))
    return scored[:limit]
