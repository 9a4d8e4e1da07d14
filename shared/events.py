"""The event envelope and the catalogue of every event servicemonth sends.

Events are past-tense facts (``member.registered``). Each has a pydantic schema, so a
consumer rejects a malformed message at the door, with a reason, instead of half-applying
it. The envelope is the same for every event; ``payload`` is checked against the schema
registered for ``(type, version)``.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

District = Annotated[str, Field(pattern=r"^\d{6}$")]
CommunityCode = Annotated[str, Field(pattern=r"^\d{12}$")]


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must carry a timezone")
    return value.astimezone(UTC)


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
    occurred_at: Annotated[datetime, AfterValidator(_utc)]
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


# --- registration -------------------------------------------------------------------


class SealedContact(BaseModel):
    """A member's contact, sealed (AES-GCM) for the one service that sends messages.

    Only notify opens it; every other consumer sees the masked phone at most.
    """

    #: The AES-GCM associated data both sides use, so a contact opens only as a contact.
    CONTEXT: ClassVar[str] = "member-contact"

    model_config = ConfigDict(extra="forbid", frozen=True)

    sealed: str
    phone_masked: str | None = None


class CommunityRef(BaseModel):
    """One of a member's community registrations (双注册)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    registration_id: uuid.UUID
    community_code: CommunityCode
    role: Literal["unit", "residence", "contact"]
    district: District


class MemberRegistered(Event):
    """在职党员报到 — a member registered, with the communities they registered in.

    Carries what consumers need and no more: pairing the skills and communities, notify
    the sealed contact; no ID number, no phone in clear.
    """

    TYPE = "member.registered"

    member_id: uuid.UUID
    unit_code: str = Field(min_length=1, max_length=40)
    unit_district: District
    communities: list[CommunityRef] = Field(min_length=1)
    skills: list[str] = []
    availability: list[str] = []
    is_leader_cadre: bool = False
    contact: SealedContact | None = None
    #: The name masked (张*) for reports' highlights; never the name in clear.
    name_masked: str | None = None


class MemberUpdated(MemberRegistered):
    """A member changed their phone, e-mail, skills or residence (the full new picture)."""

    TYPE = "member.updated"


class MemberWithdrawn(Event):
    """A member withdrew: every service erases what it holds about them."""

    TYPE = "member.withdrawn"

    member_id: uuid.UUID


class RegistrationChanged(Event):
    """A community registration moved in its state machine (routed to that community)."""

    registration_id: uuid.UUID
    member_id: uuid.UUID
    community_code: CommunityCode
    role: Literal["unit", "residence", "contact"]
    state: Literal["submitted", "confirmed", "rejected", "transferred_out", "cancelled"]
    reason: str | None = None


class RegistrationSubmitted(RegistrationChanged):
    TYPE = "registration.submitted"


class RegistrationConfirmed(RegistrationChanged):
    """报到确认 — community staff confirmed that the member reported in."""

    TYPE = "registration.confirmed"


class RegistrationRejected(RegistrationChanged):
    TYPE = "registration.rejected"


class RegistrationTransferred(RegistrationChanged):
    """The member moved residence: this registration was transferred out."""

    TYPE = "registration.transferred"


class RegistrationCancelled(RegistrationChanged):
    TYPE = "registration.cancelled"


REGISTRATION_EVENTS: tuple[type[RegistrationChanged], ...] = (
    RegistrationSubmitted,
    RegistrationConfirmed,
    RegistrationRejected,
    RegistrationTransferred,
    RegistrationCancelled,
)


class CommunityChanged(Event):
    """A community was added, renamed or closed in the directory."""

    TYPE = "directory.community_changed"

    code: CommunityCode
    name: str
    district: District
    valid_from: date | None = None
    valid_to: date | None = None


class UnitChanged(Event):
    """A unit was added or changed in the directory."""

    TYPE = "directory.unit_changed"

    code: str = Field(min_length=1, max_length=40)
    name: str
    level: Literal["city", "county"]
    district: District
    community_code: CommunityCode
    contact_community_code: CommunityCode | None = None


# --- pairing ---------------------------------------------------------------------------------


class PairingChanged(Event):
    """双对接 — a member was paired with a need or a project, or a pairing ended."""

    pairing_id: uuid.UUID
    member_id: uuid.UUID
    kind: Literal["need", "project"]
    community_code: CommunityCode
    subject_id: uuid.UUID
    title: str
    state: Literal["active", "declined", "removed"]
    reason: dict[str, str] = {}


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
    claim_expires_at: Annotated[datetime, AfterValidator(_utc)] | None = None


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


class ActivityChanged(Event):
    """五个一 — a service record was submitted, verified or returned."""

    record_id: uuid.UUID
    member_id: uuid.UUID
    kind: Literal["home_visit", "community_activity", "policy_talk", "wish", "team"]
    community_code: CommunityCode
    day: date
    hours: float
    state: Literal["submitted", "verified", "returned"]
    reason: str | None = None


class ActivitySubmitted(ActivityChanged):
    TYPE = "activity.submitted"


class ActivityVerified(ActivityChanged):
    TYPE = "activity.verified"


class ActivityReturned(ActivityChanged):
    TYPE = "activity.returned"


class TeamMembershipChanged(Event):
    """A member asked to join, was confirmed in, or left a service team."""

    team_id: uuid.UUID
    member_id: uuid.UUID
    community_code: CommunityCode
    team_name: str
    state: Literal["requested", "confirmed", "left"]


class TeamJoinRequested(TeamMembershipChanged):
    TYPE = "team.join_requested"


class TeamJoined(TeamMembershipChanged):
    TYPE = "team.joined"


class TeamLeft(TeamMembershipChanged):
    TYPE = "team.left"


# --- notify -------------------------------------------------------------------------------


class NotificationChanged(Event):
    """A message reached a final status (no contact details: kind, channel, status only)."""

    notification_id: uuid.UUID
    member_id: uuid.UUID | None = None
    kind: str
    channel: Literal["sms", "email"]
    status: str
    provider: str | None = None


class NotificationSent(NotificationChanged):
    TYPE = "notification.sent"


class NotificationDelivered(NotificationChanged):
    TYPE = "notification.delivered"


class NotificationFailed(NotificationChanged):
    TYPE = "notification.failed"


# --- reporting ----------------------------------------------------------------------------


class ReportFile(BaseModel):
    """One file of a generated report, relative to the reports folder."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    media_type: str


class ReportGenerated(Event):
    """A summary report for one subscription and period is ready (notify delivers it).

    ``recipient`` is the subscriber's contact (name, phone, e-mail), sealed for notify;
    ``channels`` are the ones the subscriber chose; ``files`` lie under the deployment's
    reports folder. ``failed`` says the run gave up, so the subscriber hears that instead
    of nothing.
    """

    TYPE = "report.generated"

    report_id: uuid.UUID
    subscription_id: uuid.UUID | None = None
    scope: str
    period_start: datetime
    period_end: datetime
    title: str
    headline: str
    files: list[ReportFile] = []
    recipient: SealedContact | None = None
    channels: list[Literal["sms", "email"]] = []
    failed: bool = False


_ALL: tuple[type[Event], ...] = (
    MemberRegistered,
    MemberUpdated,
    MemberWithdrawn,
    RegistrationSubmitted,
    RegistrationConfirmed,
    RegistrationRejected,
    RegistrationTransferred,
    RegistrationCancelled,
    CommunityChanged,
    UnitChanged,
    PairingMade,
    PairingEnded,
    *WISH_EVENTS.values(),
    ActivitySubmitted,
    ActivityVerified,
    ActivityReturned,
    TeamJoinRequested,
    TeamJoined,
    TeamLeft,
    NotificationSent,
    NotificationDelivered,
    NotificationFailed,
    ReportGenerated,
)
CATALOGUE: dict[tuple[str, int], type[Event]] = {(cls.TYPE, cls.VERSION): cls for cls in _ALL}


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


def _describe(exc: ValidationError, prefix: str = "") -> str:
    return "; ".join(
        f"{prefix}{'.'.join(str(p) for p in err['loc']) or '(body)'}: {err['msg']}"
        for err in exc.errors()
    )


def parse(body: bytes | str | dict[str, Any]) -> tuple[Envelope, Event]:
    """Check a message from the bus; raise :class:`InvalidEvent` with the reason."""
    if isinstance(body, bytes | str):
        try:
            body = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidEvent(f"not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidEvent("not a JSON object")
    try:
        envelope = Envelope.model_validate(body)
    except ValidationError as exc:
        raise InvalidEvent(f"bad envelope: {_describe(exc)}") from None
    schema = CATALOGUE.get((envelope.type, envelope.version))
    if schema is None:
        raise InvalidEvent(f"unknown event type {envelope.type!r} version {envelope.version}")
    try:
        event = schema.model_validate(envelope.payload)
    except ValidationError as exc:
        raise InvalidEvent(f"{envelope.type}: {_describe(exc, 'payload.')}") from None
    return envelope, event
