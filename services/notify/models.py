"""Notify's tables: contacts (sealed), every message with its status, and its history.

A message (:class:`Notification`) exists once per idempotency key (recipient, kind,
subject, slot); its append-only history (:class:`NotificationEvent`) says what happened to
it: queued, deferred, each attempt with the provider and its reference or error, the final
status. Contacts are sealed (AES-GCM) and found again by the HMAC of the phone; only masks
are stored in clear.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, Boolean, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import UTCDateTime, service_metadata
from shared.schedule import lease_table


class Base(DeclarativeBase):
    metadata = service_metadata()


SUBJECT_LENGTH = 120
"""What a message is about (a wish id, a report id, ``-``): longer subjects are cut."""
SLOT_LENGTH = 100
"""When a message is for (a date, ``<job>:<date>``): longer slots are cut."""


class Contact(Base):
    """How to reach a member: name, phone and e-mail sealed; masks and the phone's HMAC
    in clear; the channels the member accepts."""

    __tablename__ = "contacts"

    member_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    sealed: Mapped[str] = mapped_column(Text)
    phone_masked: Mapped[str | None] = mapped_column(String(11))
    phone_hmac: Mapped[str | None] = mapped_column(String(64), index=True)
    email_masked: Mapped[str | None] = mapped_column(String(254))
    unit_code: Mapped[str | None] = mapped_column(String(40))
    communities: Mapped[list[str]] = mapped_column(JSON)
    #: Where the member lives: the deployment serving it alone welcomes and reminds her.
    residence_district: Mapped[str | None] = mapped_column(String(6))
    sms_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    email_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class StaffContact(Base):
    """Someone who is not a member but hears from the campaign: community staff, a unit
    organiser, a leader. A replica of registration's staff account (``staff.saved``,
    ``staff.disabled``) keyed by its id; sealed like a member's contact; ``scope`` is
    ``community:CODE``, ``unit:CODE``, ``district:CODE`` or (leaders) ``city``. A disabled
    account (``state``) is no recipient."""

    __tablename__ = "staff_contacts"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    role: Mapped[str] = mapped_column(String(20))
    scope: Mapped[str] = mapped_column(String(60), index=True)
    district: Mapped[str | None] = mapped_column(String(6))
    sealed: Mapped[str] = mapped_column(Text)
    name_masked: Mapped[str] = mapped_column(String(60))
    phone_masked: Mapped[str | None] = mapped_column(String(11))
    phone_hmac: Mapped[str | None] = mapped_column(String(64), index=True)
    email_masked: Mapped[str | None] = mapped_column(String(254))
    sms_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    email_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    state: Mapped[str] = mapped_column(String(20), default="active")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Notification(Base):
    """One message to one recipient; ``idempotency_key`` makes it exist once.

    Status: queued → sending → sent → delivered | failed; queued → deferred (quiet hours,
    provider limits: waits for ``due_at``); final without sending: opted_out, rate_limited,
    suppressed (merged into a digest: ``merged_into``; or no longer needed), failed. Every
    status write is a conditional UPDATE on the status and ``attempts`` it read.
    """

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_status_due_at", "status", "due_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    recipient_kind: Mapped[str] = mapped_column(String(10))  # member | staff | sealed
    member_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    staff_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    sealed_to: Mapped[str | None] = mapped_column(Text)  # a report subscriber's contact
    kind: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(String(SUBJECT_LENGTH))
    slot: Mapped[str] = mapped_column(String(SLOT_LENGTH))
    channel: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(20), default="queued")
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    params: Mapped[dict[str, object]] = mapped_column(JSON)
    to_masked: Mapped[str | None] = mapped_column(String(254))
    phone_hmac: Mapped[str | None] = mapped_column(String(64), index=True)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    provider: Mapped[str | None] = mapped_column(String(40))
    provider_ref: Mapped[str | None] = mapped_column(String(100), index=True)
    tried: Mapped[list[str]] = mapped_column(JSON, default=list)
    segments: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(String(300))
    merged_into: Mapped[uuid.UUID | None] = mapped_column()
    correlation_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    attempted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When a send task was last handed this message (or, for a retry, when it will run);
    # None when no task is expected and the sweep should hand it over once it is due.
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class NotificationEvent(Base):
    """One line of a message's append-only history (never updated, erased with the member)."""

    __tablename__ = "notification_events"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    notification_id: Mapped[uuid.UUID] = mapped_column(index=True)
    member_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(20))
    provider: Mapped[str | None] = mapped_column(String(40))
    reference: Mapped[str | None] = mapped_column(String(100))
    error: Mapped[str | None] = mapped_column(String(300))
    detail: Mapped[str | None] = mapped_column(String(200))


class ProviderHealth(Base):
    """Failover: consecutive transient failures of a provider; past the threshold it is
    skipped until ``skip_until`` (then tried again)."""

    __tablename__ = "provider_health"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    skip_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(String(300))
    sent: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)


class CommunityName(Base):
    """A community's name, so messages say 王城社区 rather than 410303001001."""

    __tablename__ = "community_names"

    code: Mapped[str] = mapped_column(String(12), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))


class UnitDistrict(Base):
    """A unit's district and name (the weekly lists of units whose members are behind)."""

    __tablename__ = "unit_districts"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    district: Mapped[str] = mapped_column(String(6))
    name: Mapped[str] = mapped_column(String(200))


# --- reminders ---------------------------------------------------------------------------
# The five-ones replica the reminders read, and what became of each calendar slot: its
# ``reminder_runs`` row, inserted first, is the (job, slot) claim.


class FiveOnesReplica(Base):
    """五个一 — which of the five a member has done, as notify learned it from events."""

    __tablename__ = "reminder_progress"

    member_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    registered: Mapped[bool] = mapped_column(default=False)  # member.registered seen
    unit_code: Mapped[str | None] = mapped_column(String(40), index=True)
    is_leader_cadre: Mapped[bool] = mapped_column(default=False)
    home_visit: Mapped[bool] = mapped_column(default=False)
    community_activity: Mapped[bool] = mapped_column(default=False)
    policy_talk: Mapped[bool] = mapped_column(default=False)
    wish: Mapped[bool] = mapped_column(default=False)
    team: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ReminderRun(Base):
    """One calendar slot, claimed by inserting this row (the primary key is the claim): sent
    (with how many messages) or skipped."""

    __tablename__ = "reminder_runs"

    job: Mapped[str] = mapped_column(String(100), primary_key=True)
    slot: Mapped[str] = mapped_column(String(100), primary_key=True)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ran_at: Mapped[datetime] = mapped_column(UTCDateTime())
    outcome: Mapped[str] = mapped_column(String(20))  # sent | skipped | superseded
    messages: Mapped[int] = mapped_column(default=0)
    holder: Mapped[str] = mapped_column(String(100))


lease_table(Base.metadata)  # the scheduler lease
