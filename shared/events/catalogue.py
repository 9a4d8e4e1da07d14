"""The catalogue of every event servicemonth sends, and :func:`parse`, the consumers' door.

:func:`parse` checks the envelope, then its ``payload`` against the schema registered in
:data:`CATALOGUE` for ``(type, version)``. A new event class is added to ``_ALL`` here.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from shared.events.activities import (
    ActivityReturned,
    ActivitySubmitted,
    ActivityVerified,
    TeamJoined,
    TeamJoinRequested,
    TeamLeft,
)
from shared.events.auth import IdNumberTried, SignInCodeRequested, TokensRevoked
from shared.events.directory import CommunityChanged, UnitChanged
from shared.events.envelope import Envelope, Event, InvalidEvent
from shared.events.members import (
    MemberRegistered,
    MemberUpdated,
    MemberWithdrawn,
    RegistrationCancelled,
    RegistrationConfirmed,
    RegistrationRejected,
    RegistrationSubmitted,
    RegistrationTransferred,
)
from shared.events.notifications import (
    NotificationDelivered,
    NotificationFailed,
    NotificationSent,
)
from shared.events.pairing import WISH_EVENTS, PairingEnded, PairingMade
from shared.events.reports import ReportGenerated
from shared.events.staff import StaffAccountDisabled, StaffAccountSaved

_ALL: tuple[type[Event], ...] = (
    SignInCodeRequested,
    TokensRevoked,
    IdNumberTried,
    MemberRegistered,
    MemberUpdated,
    MemberWithdrawn,
    RegistrationSubmitted,
    RegistrationConfirmed,
    RegistrationRejected,
    RegistrationTransferred,
    RegistrationCancelled,
    CommunityChanged,
    UnitChanged,
    PairingMade,
    PairingEnded,
    *WISH_EVENTS.values(),
    ActivitySubmitted,
    ActivityVerified,
    ActivityReturned,
    TeamJoinRequested,
    TeamJoined,
    TeamLeft,
    NotificationSent,
    NotificationDelivered,
    NotificationFailed,
    ReportGenerated,
    StaffAccountSaved,
    StaffAccountDisabled,
)
CATALOGUE: dict[tuple[str, int], type[Event]] = {(cls.TYPE, cls.VERSION): cls for cls in _ALL}


def _describe(exc: ValidationError, prefix: str = "") -> str:
    return "; ".join(
        f"{prefix}{'.'.join(str(p) for p in err['loc']) or '(body)'}: {err['msg']}"
        for err in exc.errors()
    )


def parse(body: bytes | str | dict[str, Any]) -> tuple[Envelope, Event]:
    """Check a message from the bus; raise :class:`InvalidEvent` with the reason."""
    if isinstance(body, bytes | str):
        try:
            body = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidEvent(f"not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidEvent("not a JSON object")
    try:
        envelope = Envelope.model_validate(body)
    except ValidationError as exc:
        raise InvalidEvent(f"bad envelope: {_describe(exc)}") from None
    schema = CATALOGUE.get((envelope.type, envelope.version))
    if schema is None:
        raise InvalidEvent(f"unknown event type {envelope.type!r} version {envelope.version}")
    try:
        event = schema.model_validate(envelope.payload)
    except ValidationError as exc:
        raise InvalidEvent(f"{envelope.type}: {_describe(exc, 'payload.')}") from None
    return envelope, event
