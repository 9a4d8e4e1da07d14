"""The event envelope and the catalogue of every event servicemonth sends.

Events are past-tense facts (``member.registered``). Each has a pydantic schema, so a
consumer rejects a malformed message at the door, with a reason, instead of half-applying
it. The envelope is the same for every event; ``payload`` is checked against the schema
registered for ``(type, version)``.

``from shared.events import X`` is the way to name an event anywhere; the modules hold:

- :mod:`~shared.events.envelope`: :class:`Envelope`, the :class:`Event` base, the shared
  field types, :func:`envelope_for`;
- :mod:`~shared.events.catalogue`: :data:`CATALOGUE` and :func:`parse`;
- :mod:`~shared.events.auth`: sign-in codes, revoked tokens, a tried ID number;
- :mod:`~shared.events.members`: members (双注册) and community registrations (社区报到);
- :mod:`~shared.events.directory`: communities and units;
- :mod:`~shared.events.pairing`: pairings (双对接) and wishes (微心愿);
- :mod:`~shared.events.activities`: service records (五个一) and service teams;
- :mod:`~shared.events.notifications`: notify's message outcomes;
- :mod:`~shared.events.reports`: generated reports;
- :mod:`~shared.events.staff`: staff accounts (operators, unit organisers, community staff,
  leaders).
"""

from __future__ import annotations

from shared.events.activities import (
    ActivityChanged,
    ActivityReturned,
    ActivitySubmitted,
    ActivityVerified,
    TeamJoined,
    TeamJoinRequested,
    TeamLeft,
    TeamMembershipChanged,
)
from shared.events.auth import IdNumberTried, SignInCodeRequested, TokensRevoked
from shared.events.catalogue import CATALOGUE, parse
from shared.events.directory import CommunityChanged, UnitChanged
from shared.events.envelope import (
    CommunityCode,
    District,
    Envelope,
    Event,
    InvalidEvent,
    envelope_for,
)
from shared.events.members import (
    REGISTRATION_EVENTS,
    CommunityRef,
    MemberRegistered,
    MemberUpdated,
    MemberWithdrawn,
    RegistrationCancelled,
    RegistrationChanged,
    RegistrationConfirmed,
    RegistrationRejected,
    RegistrationSubmitted,
    RegistrationTransferred,
    SealedContact,
)
from shared.events.notifications import (
    NotificationChanged,
    NotificationDelivered,
    NotificationFailed,
    NotificationSent,
)
from shared.events.pairing import (
    WISH_EVENTS,
    PairingChanged,
    PairingEnded,
    PairingMade,
    WishChanged,
    WishClaimed,
    WishCollected,
    WishConfirmed,
    WishEvaluated,
    WishExpired,
    WishFulfilled,
    WishPublished,
    WishRejected,
    WishReleased,
    WishSubmitted,
    WishWithdrawn,
)
from shared.events.reports import ReportFile, ReportGenerated
from shared.events.staff import StaffAccountDisabled, StaffAccountSaved, StaffRole

__all__ = [
    "CATALOGUE",
    "REGISTRATION_EVENTS",
    "WISH_EVENTS",
    "ActivityChanged",
    "ActivityReturned",
    "ActivitySubmitted",
    "ActivityVerified",
    "CommunityChanged",
    "CommunityCode",
    "CommunityRef",
    "District",
    "Envelope",
    "Event",
    "IdNumberTried",
    "InvalidEvent",
    "MemberRegistered",
    "MemberUpdated",
    "MemberWithdrawn",
    "NotificationChanged",
    "NotificationDelivered",
    "NotificationFailed",
    "NotificationSent",
    "PairingChanged",
    "PairingEnded",
    "PairingMade",
    "RegistrationCancelled",
    "RegistrationChanged",
    "RegistrationConfirmed",
    "RegistrationRejected",
    "RegistrationSubmitted",
    "RegistrationTransferred",
    "ReportFile",
    "ReportGenerated",
    "SealedContact",
    "SignInCodeRequested",
    "StaffAccountDisabled",
    "StaffAccountSaved",
    "StaffRole",
    "TeamJoinRequested",
    "TeamJoined",
    "TeamLeft",
    "TeamMembershipChanged",
    "TokensRevoked",
    "UnitChanged",
    "WishChanged",
    "WishClaimed",
    "WishCollected",
    "WishConfirmed",
    "WishEvaluated",
    "WishExpired",
    "WishFulfilled",
    "WishPublished",
    "WishRejected",
    "WishReleased",
    "WishSubmitted",
    "WishWithdrawn",
    "envelope_for",
    "parse",
]
