"""Notify's tables: members' contacts (sealed) and every message with its status."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import UTCDateTime, service_metadata


class Base(DeclarativeBase):
    metadata = service_metadata()


class Contact(Base):
    """How to reach a member: name, phone and e-mail sealed; the phone's mask for display."""

    __tablename__ = "contacts"

    member_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    sealed: Mapped[str] = mapped_column(Text)
    phone_masked: Mapped[str | None] = mapped_column(String(11))
    communities: Mapped[list[str]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Notification(Base):
    """One message to one recipient; ``idempotency_key`` makes it exist once."""

    __tablename__ = "notifications"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    member_id: Mapped[uuid.UUID] = mapped_column(index=True)
    kind: Mapped[str] = mapped_column(String(40))
    channel: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(20), default="queued", index=True)
    params: Mapped[dict[str, str]] = mapped_column(JSON)
    provider_ref: Mapped[str | None] = mapped_column(String(100))
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class CommunityName(Base):
    """A community's name, so messages say 王城社区 rather than 410303001001."""

    __tablename__ = "community_names"

    code: Mapped[str] = mapped_column(String(12), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
