"""Registration's events: members (双注册) and their community registrations (社区报到).

A member registered, changed their details or withdrew; a community registration moved in
its state machine. :class:`SealedContact` (also a report's recipient) is sealed for notify.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.events.envelope import CommunityCode, District, Event

if TYPE_CHECKING:
    from shared.pii import Sealer


class SealedContact(BaseModel):
    """A member's contact, sealed (AES-GCM) for the one service that sends messages.

    Only notify opens it; every other consumer sees the masked phone at most.
    """

    #: The AES-GCM associated data both sides use, so a contact opens only as a contact.
    CONTEXT: ClassVar[str] = "member-contact"

    model_config = ConfigDict(extra="forbid", frozen=True)

    sealed: str
    phone_masked: str | None = None

    @classmethod
    def seal(cls, sealer: Sealer, name: str, phone: str | None, email: str | None) -> str:
        """A contact in its sealed form: ``{"name", "phone", "email"}`` under :attr:`CONTEXT`."""
        return sealer.seal_json({"name": name, "phone": phone, "email": email}, cls.CONTEXT)

    @classmethod
    def open(cls, sealer: Sealer, sealed: str) -> dict[str, Any]:
        """What :meth:`seal` sealed (notify only)."""
        return sealer.open_json(sealed, cls.CONTEXT)


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
    skills: list[str] = Field(default_factory=list)
    availability: list[str] = Field(default_factory=list)
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
