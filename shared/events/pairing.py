"""Pairing's events: 双对接 pairings with needs and projects, and 微心愿 wishes."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import date
from types import MappingProxyType
from typing import Literal

from pydantic import Field

from shared.events.envelope import CommunityCode, Event, UtcInstant


class PairingChanged(Event):
    """双对接 — a member was paired with a need or a project, or a pairing ended."""

    pairing_id: uuid.UUID
    member_id: uuid.UUID
    kind: Literal["need", "project"]
    community_code: CommunityCode
    subject_id: uuid.UUID
    title: str
    state: Literal["active", "declined", "removed"]
    reason: dict[str, str] = Field(default_factory=dict)


class PairingMade(PairingChanged):
    TYPE = "pairing.made"


class PairingEnded(PairingChanged):
    TYPE = "pairing.ended"


class WishChanged(Event):
    """微心愿 — a wish moved in its lifecycle (``state`` is the new state)."""

    wish_id: uuid.UUID
    community_code: CommunityCode
    title: str
    state: str
    member_id: uuid.UUID | None = None
    claim_id: uuid.UUID | None = None
    reason: str | None = None
    deadline: date | None = None
    claim_expires_at: UtcInstant | None = None


class WishCollected(WishChanged):
    """征集 — community staff recorded a resident's wish."""

    TYPE = "wish.collected"


class WishSubmitted(WishChanged):
    """A collected wish went for review (待审核)."""

    TYPE = "wish.submitted"


class WishPublished(WishChanged):
    """发布 — members can see and claim the wish."""

    TYPE = "wish.published"


class WishRejected(WishChanged):
    """The review refused the wish (``reason`` says why)."""

    TYPE = "wish.rejected"


class WishWithdrawn(WishChanged):
    """Staff took back a published wish nobody had claimed."""

    TYPE = "wish.withdrawn"


class WishExpired(WishChanged):
    """A published wish passed its deadline unclaimed."""

    TYPE = "wish.expired"


class WishClaimed(WishChanged):
    """认领 — a member claimed the wish (``member_id``, ``claim_id``, ``claim_expires_at``)."""

    TYPE = "wish.claimed"


class WishReleased(WishChanged):
    """A claim was cancelled, revoked or expired: the wish is published again."""

    TYPE = "wish.released"


class WishFulfilled(WishChanged):
    """The claiming member says the wish is done (实现); staff confirm it next."""

    TYPE = "wish.fulfilled"


class WishConfirmed(WishChanged):
    """Staff confirmed the fulfilment: the claim is realized."""

    TYPE = "wish.confirmed"


class WishEvaluated(WishChanged):
    """评价 — the community rated the fulfilled wish."""

    TYPE = "wish.evaluated"


#: The eleven wish events by the last part of their type (``"claimed"`` → :class:`WishClaimed`),
#: for consumers that treat them alike; name one by its class.
WISH_EVENTS: Mapping[str, type[WishChanged]] = MappingProxyType(
    {
        cls.TYPE.removeprefix("wish."): cls
        for cls in (
            WishCollected,
            WishSubmitted,
            WishPublished,
            WishRejected,
            WishWithdrawn,
            WishExpired,
            WishClaimed,
            WishReleased,
            WishFulfilled,
            WishConfirmed,
            WishEvaluated,
        )
    }
)
