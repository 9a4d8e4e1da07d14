"""Registration's tables: the directory, members, their registrations, rosters, staff
accounts, the audit log."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import JSON, ForeignKey, LargeBinary, String, Text, UniqueConstraint, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from shared.db import UTCDateTime, service_metadata


class Base(DeclarativeBase):
    metadata = service_metadata()


class Division(Base):
    """行政区划 — the city, a county-level division or a street/township."""

    __tablename__ = "divisions"

    code: Mapped[str] = mapped_column(String(9), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(10))  # district | street
    parent_code: Mapped[str | None] = mapped_column(String(9))


class Community(Base):
    """社区 — a residents' committee, by its 12-digit code; closed ones keep their row."""

    __tablename__ = "communities"

    code: Mapped[str] = mapped_column(String(12), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    district_code: Mapped[str] = mapped_column(String(6), index=True)
    valid_from: Mapped[date | None]
    valid_to: Mapped[date | None]
    #: 办公电话 — the community office's public number: whom a paired member calls.
    phone: Mapped[str | None] = mapped_column(String(30))


class Unit(Base):
    """单位 — a work unit, city- or county-level, belonging to one community."""

    __tablename__ = "units"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    level: Mapped[str] = mapped_column(String(10))  # city | county
    district_code: Mapped[str] = mapped_column(String(6), index=True)
    community_code: Mapped[str] = mapped_column(ForeignKey("communities.code"))
    contact_community_code: Mapped[str | None] = mapped_column(ForeignKey("communities.code"))
    valid_from: Mapped[date | None]
    valid_to: Mapped[date | None]


class DirectoryChange(Base):
    """What a directory load changed (a rename, a closing), so history is never lost."""

    __tablename__ = "directory_changes"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(10))
    code: Mapped[str] = mapped_column(String(40), index=True)
    field: Mapped[str] = mapped_column(String(40))
    old: Mapped[str | None] = mapped_column(String(200))
    new: Mapped[str | None] = mapped_column(String(200))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Member(Base):
    """在职党员 — a member; ID number and phone only sealed, found by their HMAC.

    Withdrawal erases the personal data and keeps an anonymous row (``state`` withdrawn).
    """

    __tablename__ = "members"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    state: Mapped[str] = mapped_column(String(10), default="active")
    name: Mapped[str | None] = mapped_column(String(30))
    id_number_sealed: Mapped[str | None] = mapped_column(String(200))
    id_number_hmac: Mapped[str | None] = mapped_column(String(64), unique=True)
    id_number_masked: Mapped[str | None] = mapped_column(String(18))
    phone_sealed: Mapped[str | None] = mapped_column(String(200))
    phone_hmac: Mapped[str | None] = mapped_column(String(64), index=True)
    phone_masked: Mapped[str | None] = mapped_column(String(11))
    email_sealed: Mapped[str | None] = mapped_column(String(600))
    unit_code: Mapped[str] = mapped_column(ForeignKey("units.code"), index=True)
    residence_community_code: Mapped[str] = mapped_column(ForeignKey("communities.code"))
    skills: Mapped[list[str]] = mapped_column(JSON, default=list)  # terms of SKILLS only
    #: 其他专长 — the member's own words for what maps to no skill; not used by matching.
    skills_other: Mapped[list[str]] = mapped_column(JSON, default=list, server_default=text("'[]'"))
    availability: Mapped[list[str]] = mapped_column(JSON, default=list)
    is_leader_cadre: Mapped[bool] = mapped_column(default=False)
    roster_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    consented_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    registrations: Mapped[list[CommunityRegistration]] = relationship(
        back_populates="member", order_by="CommunityRegistration.role"
    )


class CommunityRegistration(Base):
    """社区报到 — a member's registration in one community (unit, residence or contact)."""

    __tablename__ = "community_registrations"
    __table_args__ = (UniqueConstraint("member_id", "community_code", "role"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("members.id"), index=True)
    community_code: Mapped[str] = mapped_column(ForeignKey("communities.code"), index=True)
    district_code: Mapped[str] = mapped_column(String(6))
    role: Mapped[str] = mapped_column(String(10))  # unit | residence | contact
    state: Mapped[str] = mapped_column(String(20), default="submitted")
    reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    member: Mapped[Member] = relationship(back_populates="registrations")


class Roster(Base):
    """花名册 — one upload of a unit's roster and what became of its rows."""

    __tablename__ = "rosters"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    unit_code: Mapped[str] = mapped_column(ForeignKey("units.code"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_sha256: Mapped[str] = mapped_column(String(64), index=True)
    content: Mapped[bytes | None] = mapped_column(LargeBinary)  # dropped once imported
    status: Mapped[str] = mapped_column(String(10), default="running")
    total: Mapped[int] = mapped_column(default=0)
    accepted: Mapped[int] = mapped_column(default=0)
    rejected: Mapped[int] = mapped_column(default=0)
    duplicates: Mapped[int] = mapped_column(default=0)
    #: Landed rows with a note (专长 words kept as the member's own); not rejections.
    noted: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class RosterError(Base):
    """A rejected roster row: where, which field, why — and the row itself, sealed."""

    __tablename__ = "roster_errors"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    roster_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("rosters.id"), index=True)
    row: Mapped[int]
    field: Mapped[str] = mapped_column(String(60))
    message: Mapped[str] = mapped_column(String(500))
    row_sealed: Mapped[str | None] = mapped_column(Text)


class RosterNote(Base):
    """A landed roster row with something the unit should know (专长 words that map to no
    skill, kept as the member's own words): where, which field, what. Never a rejection."""

    __tablename__ = "roster_notes"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    roster_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("rosters.id"), index=True)
    row: Mapped[int]
    field: Mapped[str] = mapped_column(String(60))
    message: Mapped[str] = mapped_column(String(500))


class StaffAccount(Base):
    """An account for someone who runs the campaign rather than serves in it: a district's
    operator, a unit's organiser, community staff, a leader. Created by the operator above
    them (:mod:`services.registration.staff`); the mobile is sealed and found by its HMAC
    (SMS-code sign-in), shown masked. One account per (phone, role, scope): the same person
    may staff two communities, each an account of its own.
    """

    __tablename__ = "staff_accounts"
    __table_args__ = (UniqueConstraint("phone_hmac", "role", "scope"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(30))
    role: Mapped[str] = mapped_column(String(20))  # operator | unit | community | leader
    scope: Mapped[str] = mapped_column(String(60))
    # None for a city-scope leader; a city-level unit's organiser has the city's code
    district_code: Mapped[str | None] = mapped_column(String(6), index=True)
    phone_sealed: Mapped[str] = mapped_column(String(200))
    phone_hmac: Mapped[str] = mapped_column(String(64), index=True)
    phone_masked: Mapped[str] = mapped_column(String(11))
    email_sealed: Mapped[str | None] = mapped_column(String(600))
    state: Mapped[str] = mapped_column(String(10), default="active")  # active | disabled
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AuditEntry(Base):
    """Who read unmasked personal data, whose, and when."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    token_id: Mapped[str] = mapped_column(String(36))
    #: Who: the token's subject (``staff:<account id>`` for a person signed in; ``cli`` for
    #: an operator token, which ``token_id`` finds in ``issued_tokens`` with its label).
    subject: Mapped[str | None] = mapped_column(String(80))
    role: Mapped[str] = mapped_column(String(20))
    scope: Mapped[str] = mapped_column(String(60))
    action: Mapped[str] = mapped_column(String(40))
    member_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    detail: Mapped[str | None] = mapped_column(String(500))


class SignInCode(Base):
    """验证码 — the one live sign-in code of a number: only its keyed hash is kept."""

    __tablename__ = "sign_in_codes"

    phone_hmac: Mapped[str] = mapped_column(String(64), primary_key=True)
    code_hmac: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(default=0)


class RateHit(Base):
    """One counted request (a code asked for, a registration tried) under a limit's key;
    counted in the database so limits hold across processes and workers."""

    __tablename__ = "rate_hits"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(100), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class IssuedToken(Base):
    """A token an operator made with ``servicemonth token create`` (for ``token list`` and
    ``token revoke``); the token itself is shown once and never kept."""

    __tablename__ = "issued_tokens"

    jti: Mapped[str] = mapped_column(String(36), primary_key=True)
    role: Mapped[str] = mapped_column(String(20))
    scope: Mapped[str] = mapped_column(String(60))
    label: Mapped[str | None] = mapped_column(String(200))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
