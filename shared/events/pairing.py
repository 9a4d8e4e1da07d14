"""Pairing's events: 双对接 pairings with needs and projects, and 微心愿 wishes."""

from __future__ import annotations

import uuid
from datetime import date
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


def _wish_event(name: str) -> type[WishChanged]:
    return type(f"Wish{name.title()}", (WishChanged,), {"TYPE": f"wish.{name}"})


WISH_EVENTS: dict[str, type[WishChanged]] = {
    name: _wish_event(name)
    for name in (
        "collected",
        "submitted",
        "published",
        "rejected",
        "withdrawn",
        "expired",
        "claimed",
        "released",  # a claim was cancelled, revoked or expired: published again
        "fulfilled",
        "confirmed",
        "evaluated",
    )
}
