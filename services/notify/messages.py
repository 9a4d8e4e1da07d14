"""What every part of notify says about a message: who it is for, its key, its statuses,
how it reaches the send task, which channel it takes, and its history.

Messages are queued by :mod:`services.notify.bulk` (one or many at a time, the same rules)
and sent by :mod:`services.notify.sending`. Recipients are members (their contact comes
from registration's events), staff contacts (community staff, unit organisers, leaders:
notify keeps them, see :mod:`contacts`), or a report subscriber whose contact travels
sealed in ``report.generated``.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from services.notify.models import Notification, NotificationEvent
from shared.db import UnitOfWork
from shared.pii import redact

Dispatch = Callable[[uuid.UUID], None]

#: Kinds that go by e-mail whenever the recipient has an address (files attached).
EMAIL_KINDS = frozenset({"report_ready"})
#: Statuses from which a message may still be sent.
WAITING = ("queued", "deferred")
#: Statuses after which nothing more happens (``sent`` may still become delivered/failed).
FINAL = ("delivered", "failed", "opted_out", "rate_limited", "suppressed")
#: Statuses that count as "an SMS went to this number" for caps and provider limits.
SENT_LIKE = ("sending", "sent", "delivered")


@dataclass(frozen=True)
class Recipient:
    """Who a message is for: a member, a staff contact, or a sealed subscriber contact."""

    kind: Literal["member", "staff", "sealed"]
    id: uuid.UUID
    sealed: str | None = None  # the subscriber's SealedContact.sealed (kind "sealed")
    phone_masked: str | None = None

    @classmethod
    def member(cls, member_id: uuid.UUID) -> Recipient:
        return cls("member", member_id)

    @classmethod
    def staff(cls, contact_id: uuid.UUID) -> Recipient:
        return cls("staff", contact_id)

    @classmethod
    def subscriber(
        cls, subscriber_id: uuid.UUID, sealed: str, phone_masked: str | None = None
    ) -> Recipient:
        return cls("sealed", subscriber_id, sealed, phone_masked)

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.id}"


# --- dispatch: how a committed message reaches the send task -----------------------------

_dispatch: Dispatch | None = None


def set_dispatch(dispatch: Dispatch | None) -> None:
    """Replace how queued messages are handed to the send task (None: the Celery default)."""
    global _dispatch
    _dispatch = dispatch


def dispatch(notification_id: uuid.UUID) -> None:
    """Hand one message to the send task (after commit)."""
    if _dispatch is not None:
        _dispatch(notification_id)
        return
    from services.notify import runtime
    from shared.workers import app_for, task_queue

    settings = runtime().settings
    app_for("notify", settings).send_task(
        SEND_TASK, args=[str(notification_id)], queue=task_queue("notify", settings)
    )


SEND_TASK = "notify.send"


# --- queueing ------------------------------------------------------------------------------


def idempotency_key(recipient: Recipient, kind: str, subject: str, slot: str) -> str:
    key = f"{recipient.key}|{kind}|{subject}|{slot}"
    if len(key) <= 200:
        return key
    return f"{recipient.key}|{kind}|#" + hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Reach:
    """What notify knows about reaching a recipient without opening the sealed contact."""

    phone_masked: str | None
    phone_hmac: str | None
    email_masked: str | None
    sms_enabled: bool
    email_enabled: bool
    known: bool


def choose_channel(kind: str, reach: Reach, wanted: str | None = None) -> str | None:
    """SMS to a mobile; e-mail when there is no mobile, SMS is refused, or the kind (or the
    caller) asks for e-mail. None: no channel the recipient accepts."""
    if not reach.known:
        return wanted or ("email" if kind in EMAIL_KINDS else "sms")
    has_sms = reach.phone_masked is not None and reach.sms_enabled
    has_email = reach.email_masked is not None and reach.email_enabled
    if (wanted == "email" or kind in EMAIL_KINDS) and has_email:
        return "email"
    if wanted == "sms" and has_sms:
        return "sms"
    if has_sms:
        return "sms"
    if has_email:
        return "email"
    return None


def record(
    uow: UnitOfWork,
    notification: Notification,
    status: str,
    *,
    provider: str | None = None,
    reference: str | None = None,
    error: str | None = None,
    detail: str | None = None,
) -> None:
    """Append one line to the message's history (numbers and addresses in it masked)."""
    uow.session.add(
        NotificationEvent(
            notification_id=notification.id,
            member_id=notification.member_id,
            at=uow.now(),
            status=status,
            provider=provider,
            reference=reference,
            error=redact(error)[:300] if error else None,
            detail=redact(detail)[:200] if detail else None,
        )
    )
