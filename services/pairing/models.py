"""Pairing's tables: the replica of members it pairs (no personal data kept)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import UTCDateTime, service_metadata


class Base(DeclarativeBase):
    metadata = service_metadata()


class MemberReplica(Base):
    """A member as pairing knows them: communities and skills, learned from events."""

    __tablename__ = "members"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    unit_code: Mapped[str] = mapped_column(String(40), index=True)
    communities: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    skills: Mapped[list[str]] = mapped_column(JSON)
    is_leader_cadre: Mapped[bool]
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime())
