"""Pairing's tables: replicas of members and communities, what communities publish,
pairings, micro-wishes and their claims, teams, and the five ones' service records."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import UTCDateTime, service_metadata


class Base(DeclarativeBase):
    metadata = service_metadata()


# --- replicas (learned from registration's events) ------------------------------------------


class MemberReplica(Base):
    """A member as pairing knows them: communities (with registration state) and skills."""

    __tablename__ = "members"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    unit_code: Mapped[str] = mapped_column(String(40), index=True)
    communities: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    skills: Mapped[list[str]] = mapped_column(JSON)
    availability: Mapped[list[str]] = mapped_column(JSON, default=list)
    is_leader_cadre: Mapped[bool]
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CommunityReplica(Base):
    """A community's name and district (from ``directory.community_changed``)."""

    __tablename__ = "communities"

    code: Mapped[str] = mapped_column(String(12), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    district_code: Mapped[str] = mapped_column(String(6))
    valid_to: Mapped[date | None]


# --- what a community publishes ---------------------------------------------------------------


class ServiceTarget(Base):
    """服务对象 — a resident in need, stored masked; sensitive categories need consent."""

    __tablename__ = "service_targets"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    community_code: Mapped[str] = mapped_column(String(12), index=True)
    category: Mapped[str] = mapped_column(String(30))  # 空巢老人, 留守儿童, 残障人士 …
    label: Mapped[str] = mapped_column(String(60))  # masked: 张*
    sensitive: Mapped[bool] = mapped_column(default=False)
    consent: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Need(Base):
    """需求清单 item — what a community needs: a skill or a category, volunteers, a window."""

    __tablename__ = "needs"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    community_code: Mapped[str] = mapped_column(String(12), index=True)
    title: Mapped[str] = mapped_column(String(200))
    required_skill: Mapped[str | None] = mapped_column(String(40))
    category: Mapped[str | None] = mapped_column(String(30))
    volunteers_needed: Mapped[int] = mapped_column(default=1)
    availability: Mapped[list[str]] = mapped_column(JSON, default=list)  # when it happens
    window_start: Mapped[date | None]
    window_end: Mapped[date | None]
    target_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("service_targets.id"))
    state: Mapped[str] = mapped_column(String(10), default="open")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Project(Base):
    """服务项目 — a community project (文明创建, 治安巡逻, 环境卫生 …) with a capacity."""

    __tablename__ = "projects"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    community_code: Mapped[str] = mapped_column(String(12), index=True)
    kind: Mapped[str] = mapped_column(String(30))
    title: Mapped[str] = mapped_column(String(200))
    required_skill: Mapped[str | None] = mapped_column(String(40))
    schedule: Mapped[str | None] = mapped_column(String(200))
    availability: Mapped[list[str]] = mapped_column(JSON, default=list)
    capacity: Mapped[int] = mapped_column(default=10)
    state: Mapped[str] = mapped_column(String(10), default="open")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Team(Base):
    """服务团队 — a service team by speciality."""

    __tablename__ = "teams"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    community_code: Mapped[str] = mapped_column(String(12), index=True)
    name: Mapped[str] = mapped_column(String(100))
    speciality: Mapped[str | None] = mapped_column(String(40))
    leader_member_id: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TeamMembership(Base):
    """A member in a team: requested → confirmed → left; confirmed counts as one of five."""

    __tablename__ = "team_memberships"
    __table_args__ = (UniqueConstraint("team_id", "member_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    team_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("teams.id"), index=True)
    member_id: Mapped[uuid.UUID] = mapped_column(index=True)
    state: Mapped[str] = mapped_column(String(10), default="requested")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


# --- pairings (双对接) -----------------------------------------------------------------------


class Pairing(Base):
    """A member paired with a need (resident side) or a project, and why."""

    __tablename__ = "pairings"
    __table_args__ = (
        Index(
            "uq_pairings_active_need",
            "member_id",
            "need_id",
            unique=True,
            sqlite_where=text("state = 'active' AND need_id IS NOT NULL"),
            postgresql_where=text("state = 'active' AND need_id IS NOT NULL"),
        ),
        Index(
            "uq_pairings_active_project",
            "member_id",
            "project_id",
            unique=True,
            sqlite_where=text("state = 'active' AND project_id IS NOT NULL"),
            postgresql_where=text("state = 'active' AND project_id IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    member_id: Mapped[uuid.UUID] = mapped_column(index=True)
    kind: Mapped[str] = mapped_column(String(10))  # need | project
    need_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("needs.id"), index=True)
    project_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("projects.id"), index=True)
    community_code: Mapped[str] = mapped_column(String(12), index=True)
    score: Mapped[int] = mapped_column(default=0)
    reason: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    source: Mapped[str] = mapped_column(String(10), default="engine")  # engine | staff
    state: Mapped[str] = mapped_column(String(10), default="active")  # active|declined|removed
    run_id: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class PairingRun(Base):
    """A 双对接 run that staff asked for: queued by ``POST /pairings/run``, done by pairing's
    worker (``pairing.run``); ``phase`` and ``progress`` say how far it got."""

    __tablename__ = "pairing_runs"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    scope: Mapped[str] = mapped_column(String(40))
    state: Mapped[str] = mapped_column(String(10), default="queued")  # queued|running|done|failed
    phase: Mapped[str] = mapped_column(String(20), default="queued")
    progress: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    summary: Mapped[dict[str, object] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(String(500))
    requested_by: Mapped[str] = mapped_column(String(80))
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


# --- micro-wishes (微心愿) ------------------------------------------------------------------


class Wish(Base):
    """微心愿 — a resident's small, concrete wish, collected and published by the community."""

    __tablename__ = "wishes"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    community_code: Mapped[str] = mapped_column(String(12), index=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(40))
    beneficiary_category: Mapped[str | None] = mapped_column(String(30))
    deadline: Mapped[date | None]
    state: Mapped[str] = mapped_column(String(20), default="collected", index=True)
    reason: Mapped[str | None] = mapped_column(String(500))  # why rejected or withdrawn
    rating: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WishClaim(Base):
    """A member's claim on a wish. At most one active claim per wish: a partial unique
    index, so of concurrent claims exactly one commits."""

    __tablename__ = "wish_claims"
    __table_args__ = (
        Index(
            "uq_wish_claims_one_active",
            "wish_id",
            unique=True,
            sqlite_where=text("state = 'active'"),
            postgresql_where=text("state = 'active'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    wish_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("wishes.id"), index=True)
    member_id: Mapped[uuid.UUID] = mapped_column(index=True)
    state: Mapped[str] = mapped_column(String(10), default="active")
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


# --- the five ones (五个一) ------------------------------------------------------------------


class ServiceRecord(Base):
    """One of the five ones, recorded by the member and verified by the community.

    A realized wish claim and a confirmed team membership add one automatic record each
    (``source`` wish or team), at most once per member: a partial unique index keeps it so.
    """

    __tablename__ = "service_records"
    __table_args__ = (
        Index(
            "uq_service_records_automatic",
            "member_id",
            "source",
            unique=True,
            sqlite_where=text("source <> 'member'"),
            postgresql_where=text("source <> 'member'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    member_id: Mapped[uuid.UUID] = mapped_column(index=True)
    kind: Mapped[str] = mapped_column(String(20))
    community_code: Mapped[str] = mapped_column(String(12), index=True)
    day: Mapped[date]
    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    hours: Mapped[float]
    note: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(10), default="member")  # member | wish | team
    source_id: Mapped[uuid.UUID | None]
    state: Mapped[str] = mapped_column(String(10), default="submitted")
    reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
