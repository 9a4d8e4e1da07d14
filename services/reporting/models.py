"""Reporting's read models: projections of every event, kept with the time of each change.

No personal data: members are known by id, with a masked name (张*) for the "党员志愿者在行动"
highlights and the leading cadres without a record. Facts that change keep their history as
intervals ``[valid_from, valid_to)`` (``valid_to`` empty while current), so a figure can be
computed as of any instant. ``event_log`` keeps every applied envelope, append-only, so the
projections can be rebuilt by replaying it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import JSON, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import UTCDateTime, service_metadata
from shared.schedule import lease_table


class Base(DeclarativeBase):
    metadata = service_metadata()


class Span:
    """An interval of one fact's history: ``[valid_from, valid_to)``, open while current."""

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    valid_from: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    valid_to: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class Place(Base):
    """A district, unit or community by its scope (``unit:U1``), with its name (directory)."""

    __tablename__ = "places"

    scope: Mapped[str] = mapped_column(String(60), primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))  # district | unit | community
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    district: Mapped[str] = mapped_column(String(6), index=True)
    level: Mapped[str | None] = mapped_column(String(10))  # units: city | county


class MemberFact(Base):
    """A member as reporting knows them now: unit, leading cadre, masked name."""

    __tablename__ = "member_facts"

    member_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    unit_code: Mapped[str] = mapped_column(String(40), index=True)
    unit_district: Mapped[str] = mapped_column(String(6))
    is_leader_cadre: Mapped[bool] = mapped_column(default=False)
    name_masked: Mapped[str | None] = mapped_column(String(60))
    withdrawn_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class MemberScope(Span, Base):
    """A member counting in a scope (``city``, ``district:…``, ``unit:…``, ``community:…``)
    for an interval: once per scope at any instant, never twice in a total.

    ``reported_in`` is 报到 in that scope's sense: at a community, the member's registration
    there is confirmed; at a unit, a district or the city, one registration anywhere is.
    """

    __tablename__ = "member_scopes"
    __table_args__ = (
        # covering: the members of a scope at an instant are read from the index alone
        Index(
            "ix_member_scopes_scope_valid",
            "scope",
            "valid_from",
            "valid_to",
            "member_id",
            "is_leader_cadre",
            "reported_in",
        ),
        Index("ix_member_scopes_member", "member_id", "valid_to"),
        # covering: a scope's members now (the live figures) are read from the index alone
        Index(
            "ix_member_scopes_current",
            "scope",
            "valid_to",
            "member_id",
            "is_leader_cadre",
            "reported_in",
        ),
    )

    member_id: Mapped[uuid.UUID]
    scope: Mapped[str] = mapped_column(String(60))
    is_leader_cadre: Mapped[bool] = mapped_column(default=False)
    reported_in: Mapped[bool] = mapped_column(default=False)


class RegistrationState(Span, Base):
    """A community registration's state over time (报到 = confirmed)."""

    __tablename__ = "registration_states"
    __table_args__ = (
        Index("ix_registration_states_key", "registration_id", "valid_from"),
        # covering: a member's registrations at an instant (the figures as of an instant)
        Index(
            "ix_registration_states_member",
            "member_id",
            "valid_from",
            "valid_to",
            "state",
            "role",
        ),
    )

    registration_id: Mapped[uuid.UUID]
    member_id: Mapped[uuid.UUID]
    community_code: Mapped[str] = mapped_column(String(12))
    role: Mapped[str] = mapped_column(String(10))
    state: Mapped[str] = mapped_column(String(20))


class PairingState(Span, Base):
    """A pairing (双对接) with a need or a project over time: active, declined, removed."""

    __tablename__ = "pairing_states"
    __table_args__ = (
        Index("ix_pairing_states_key", "pairing_id", "valid_from"),
        # covering: a member's pairings at an instant (the figures as of an instant)
        Index("ix_pairing_states_member", "member_id", "valid_from", "valid_to", "state", "kind"),
    )

    pairing_id: Mapped[uuid.UUID]
    member_id: Mapped[uuid.UUID]
    kind: Mapped[str] = mapped_column(String(10))
    community_code: Mapped[str] = mapped_column(String(12))
    state: Mapped[str] = mapped_column(String(10))


class WishState(Span, Base):
    """A micro-wish's state over time, with the member holding (or who fulfilled) it."""

    __tablename__ = "wish_states"
    __table_args__ = (Index("ix_wish_states_key", "wish_id", "valid_from"),)

    wish_id: Mapped[uuid.UUID]
    community_code: Mapped[str] = mapped_column(String(12), index=True)
    state: Mapped[str] = mapped_column(String(20))
    member_id: Mapped[uuid.UUID | None] = mapped_column(index=True)


class RecordFact(Base):
    """One service record of the five ones; it counts from ``verified_at`` (verified is final)."""

    __tablename__ = "record_facts"
    __table_args__ = (
        # covering: a member's verified records before an instant, by kind, with the hours
        Index(
            "ix_record_facts_member_verified",
            "member_id",
            "state",
            "verified_at",
            "kind",
            "hours",
        ),
    )

    record_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    member_id: Mapped[uuid.UUID]
    kind: Mapped[str] = mapped_column(String(20))
    community_code: Mapped[str] = mapped_column(String(12))
    day: Mapped[dt.date]
    hours: Mapped[float]
    state: Mapped[str] = mapped_column(String(10))
    verified_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), index=True)


class MemberStatus(Base):
    """A member's standing now, kept with every change: the live figures read this instead
    of the histories (the figures as of an instant read the histories). Whether the member
    reported in is kept per scope (``MemberScope.reported_in``)."""

    __tablename__ = "member_status"
    # SQLite: the rows stored in the key's own B-tree, so the live figures' join finds a
    # member's standing in one look-up instead of two (key index, then row)
    __table_args__ = ({"sqlite_with_rowid": False},)

    member_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    dual_registered: Mapped[bool] = mapped_column(default=False)
    dual_paired: Mapped[bool] = mapped_column(default=False)
    home_visit: Mapped[bool] = mapped_column(default=False)
    community_activity: Mapped[bool] = mapped_column(default=False)
    policy_talk: Mapped[bool] = mapped_column(default=False)
    wish: Mapped[bool] = mapped_column(default=False)
    team: Mapped[bool] = mapped_column(default=False)
    complete: Mapped[bool] = mapped_column(default=False)
    verified_records: Mapped[int] = mapped_column(default=0)
    hours: Mapped[float] = mapped_column(default=0.0)


class EventLogEntry(Base):
    """Every envelope reporting applied, in order, append-only: the source of a rebuild."""

    __tablename__ = "event_log"

    position: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    type: Mapped[str] = mapped_column(String(100))
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    member_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    body: Mapped[str] = mapped_column(sa.Text)


class Pseudonym(Base):
    """Which pseudonym replaced a withdrawn member (found by the member id's HMAC);
    see ``pseudonyms``."""

    __tablename__ = "pseudonyms"

    member_hmac: Mapped[str] = mapped_column(String(64), primary_key=True)
    pseudonym: Mapped[uuid.UUID] = mapped_column(unique=True)


class DailySnapshot(Base):
    """The figures of one scope as of the end of one day (Asia/Shanghai), for trends."""

    __tablename__ = "daily_snapshots"

    scope: Mapped[str] = mapped_column(String(60), primary_key=True)
    day: Mapped[dt.date] = mapped_column(primary_key=True)
    figures: Mapped[dict[str, object]] = mapped_column(JSON)
    taken_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


# --- subscriptions and report runs ---------------------------------------------------------

lease_table(Base.metadata)  # the scheduler lease; a run's row is its slot's claim


class Subscription(Base):
    """A leader's scheduled summary (定期报告): a scope, a calendar, channels and formats.

    The subscriber's name, e-mail and phone are sealed together for notify
    (``SealedContact.CONTEXT``); only masked copies are kept for display.
    """

    __tablename__ = "subscriptions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    scope: Mapped[str] = mapped_column(String(60), index=True)
    schedule: Mapped[str] = mapped_column(String(100))
    channels: Mapped[str] = mapped_column(String(40))
    formats: Mapped[str] = mapped_column(String(40))
    name_masked: Mapped[str] = mapped_column(String(60))
    email_masked: Mapped[str | None] = mapped_column(String(200))
    phone_masked: Mapped[str | None] = mapped_column(String(20))
    contact_sealed: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(36), default="")  # the token's jti
    active: Mapped[bool] = mapped_column(default=True)


class ReportRun(Base):
    """One report for one (subscription, period), or one built on demand (no subscription).

    ``status``: working → done | retry → working … | failed; skipped for a slot missed past
    the grace period. The unique key makes a slot's claim a conditional insert.
    """

    __tablename__ = "report_runs"
    __table_args__ = (UniqueConstraint("subscription_id", "period_start", "period_end"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    subscription_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    scope: Mapped[str] = mapped_column(String(60), index=True)
    period_start: Mapped[datetime] = mapped_column(UTCDateTime())
    period_end: Mapped[datetime] = mapped_column(UTCDateTime())
    slot: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(10), index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    holder: Mapped[str] = mapped_column(String(100))
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    error: Mapped[str | None] = mapped_column(String(500))
    headline: Mapped[str | None] = mapped_column(String(500))
    files: Mapped[str | None] = mapped_column(Text)  # JSON list of ReportFile


class ReportDownload(Base):
    """Who downloaded which report file, and when (the audit trail of report reads)."""

    __tablename__ = "report_downloads"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    token_id: Mapped[str] = mapped_column(String(36))
    role: Mapped[str] = mapped_column(String(20))
    scope: Mapped[str] = mapped_column(String(60))
    report_id: Mapped[uuid.UUID] = mapped_column(index=True)
    file: Mapped[str] = mapped_column(String(60))


class StoredReportFile(Base):
    """One file of a finished report (the HTML, a chart, the workbook), kept with the run:
    written in the transaction that marks the run done, served by the download route to
    people and to notify (over HTTP), so no folder is shared between machines."""

    __tablename__ = "report_files"

    report_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    media_type: Mapped[str] = mapped_column(String(100))
    content: Mapped[bytes] = mapped_column(sa.LargeBinary)
