"""Reporting's read models: who counts where (no personal data)."""

from __future__ import annotations

import uuid

from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import service_metadata


class Base(DeclarativeBase):
    metadata = service_metadata()


class MemberScope(Base):
    """One row per (member, scope the member counts in): ``city``, ``district:410303``,
    ``unit:…``, ``community:…``. A member counts once per scope, never twice in a total.
    """

    __tablename__ = "member_scopes"

    member_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(60), primary_key=True, index=True)
    is_leader_cadre: Mapped[bool] = mapped_column(default=False)


class RegistrationFact(Base):
    """The state of each community registration (reported in = confirmed)."""

    __tablename__ = "registration_facts"

    registration_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    member_id: Mapped[uuid.UUID] = mapped_column(index=True)
    community_code: Mapped[str] = mapped_column(String(12))
    role: Mapped[str] = mapped_column(String(10))
    state: Mapped[str] = mapped_column(String(20))
