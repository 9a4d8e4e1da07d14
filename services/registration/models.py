"""Registration's tables: the directory (communities, units), members, registrations."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from shared.db import UTCDateTime, service_metadata


class Base(DeclarativeBase):
    metadata = service_metadata()


class Community(Base):
    """社区 — a residents' committee, by its 12-digit code."""

    __tablename__ = "communities"

    code: Mapped[str] = mapped_column(String(12), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    district_code: Mapped[str] = mapped_column(String(6), index=True)
    valid_from: Mapped[date | None]
    valid_to: Mapped[date | None]


class Unit(Base):
    """单位 — a work unit, city- or county-level, belonging to one community."""

    __tablename__ = "units"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    level: Mapped[str] = mapped_column(String(10))  # city | county
    district_code: Mapped[str] = mapped_column(String(6), index=True)
    community_code: Mapped[str] = mapped_column(ForeignKey("communities.code"))
    contact_community_code: Mapped[str | None] = mapped_column(ForeignKey("communities.code"))


class Member(Base):
    """在职党员 — a member; ID number and phone only sealed, found by their HMAC."""

    __tablename__ = "members"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(30))
    id_number_sealed: Mapped[str] = mapped_column(String(200))
    id_number_hmac: Mapped[str] = mapped_column(String(64), unique=True)
    id_number_masked: Mapped[str] = mapped_column(String(18))
    phone_sealed: Mapped[str] = mapped_column(String(200))
    phone_hmac: Mapped[str] = mapped_column(String(64), index=True)
    phone_masked: Mapped[str] = mapped_column(String(11))
    email: Mapped[str | None] = mapped_column(String(254))
    unit_code: Mapped[str] = mapped_column(ForeignKey("units.code"), index=True)
    residence_community_code: Mapped[str] = mapped_column(ForeignKey("communities.code"))
    skills: Mapped[list[str]] = mapped_column(JSON, default=list)
    is_leader_cadre: Mapped[bool] = mapped_column(default=False)
    consented_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

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
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    member: Mapped[Member] = relationship(back_populates="registrations")
