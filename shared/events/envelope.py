"""The event envelope, the base of every event schema, and the field types they share.

Events are past-tense facts (``member.registered``). Each has a pydantic schema, so a
consumer rejects a malformed message at the door, with a reason, instead of half-applying
it. The envelope is the same for every event; :func:`envelope_for` wraps an event in one.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

District = Annotated[str, Field(pattern=r"^\d{6}$")]
CommunityCode = Annotated[str, Field(pattern=r"^\d{12}$")]


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must carry a timezone")
    return value.astimezone(UTC)


#: An instant: a naive datetime is refused (its zone would be a guess), an aware one is
#: kept in UTC.
UtcInstant = Annotated[datetime, AfterValidator(_utc)]


class InvalidEvent(Exception):
    """A message that is not a valid event; ``reason`` says why, field by field."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Envelope(BaseModel):
    """What travels on the bus: routing facts around a typed payload."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: uuid.UUID
    type: str
    version: int = Field(ge=1)
    occurred_at: UtcInstant
    district: District
    campaign: str
    producer: str
    correlation_id: uuid.UUID | None = None
    payload: dict[str, Any]

    @property
    def routing_key(self) -> str:
        return f"{self.district}.{self.type}"


class Event(BaseModel):
    """Base of every payload schema; subclasses name their ``TYPE`` and ``VERSION``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    TYPE: ClassVar[str]
    VERSION: ClassVar[int] = 1


def envelope_for(
    event: Event,
    *,
    district: str,
    campaign: str,
    producer: str,
    occurred_at: datetime,
    correlation_id: uuid.UUID | None = None,
) -> Envelope:
    """Wrap ``event`` for the bus (a fresh id each time)."""
    return Envelope(
        id=uuid.uuid4(),
        type=event.TYPE,
        version=event.VERSION,
        occurred_at=occurred_at,
        district=district,
        campaign=campaign,
        producer=producer,
        correlation_id=correlation_id,
        payload=event.model_dump(mode="json"),
    )
