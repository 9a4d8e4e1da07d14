"""Queue a message: one per (recipient, kind, subject, slot), sent only after commit.

Everything in notify that wants someone told something — a triggered message, a reminder,
a report — calls :func:`queue_message`. The message is committed with status ``queued``
(the idempotency key makes a second call a no-op that answers None) and the send task is
enqueued only after the commit. A message with a future ``due_at`` waits in the table for
the sweeper: no broker ETAs.

Recipients are members (their contact comes from registration's events), staff contacts
(community staff, unit organisers, leaders: notify keeps them, see :mod:`contacts`), or a
report subscriber whose contact travels sealed in ``report.generated``.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from services.notify.models import Contact, Notification, NotificationEvent, StaffContact
from shared.db import UnitOfWork

Dispatch = Callable[[uuid.UUID], None]

#: Kinds that go by e-mail whenever the recipient has an address (files attached).
EMAIL_KINDS = frozenset({"report_ready"})
#: Statuses from which a message may still be sent.
WAITING = ("queued", "deferred")
#: Statuses after which nothing more happens (``sent`` may still become delivered/failed).
FINAL = ("delivered", "failed", "opted_out", "rate_limited", "suppressed")


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


def reach_of(uow: UnitOfWork, recipient: Recipient) -> Reach:
    if recipient.kind == "member":
        contact = uow.session.get(Contact, recipient.id)
        if contact is None:
            return Reach(None, None, None, True, True, known=False)
        return Reach(
            contact.phone_masked,
            contact.phone_hmac,
            contact.email_masked,
            contact.sms_enabled,
            contact.email_enabled,
            known=True,
        )
    if recipient.kind == "staff":
        staff = uow.session.get(StaffContact, recipient.id)
        if staff is None or staff.state != "active":
            return Reach(None, None, None, False, False, known=True)
        return Reach(
            staff.phone_masked,
            staff.phone_hmac,
            staff.email_masked,
            staff.sms_enabled,
            staff.email_enabled,
            known=True,
        )
    return Reach(recipient.phone_masked, None, None, True, True, known=False)


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


def queue_message(
    uow: UnitOfWork,
    *,
    recipient: Recipient,
    kind: str,
    subject: str,
    slot: str,
    params: dict[str, object],
    urgent: bool = False,
    due_at: datetime | None = None,
    correlation_id: uuid.UUID | None = None,
    channel: str | None = None,
) -> uuid.UUID | None:
    """Queue one message to ``recipient``; None when (recipient, kind, subject, slot)
    was queued before.

    ``subject`` is what the message is about (a wish id, a report id, ``-``); ``slot`` when
    it is for (a date, a calendar slot, ``-``). The send task is enqueued after commit,
    unless ``due_at`` lies in the future: then the sweeper sends it when due. ``channel``
    asks for ``sms`` or ``email``; by default SMS to a mobile, e-mail as the fallback.
    A recipient who accepts no channel gets the message recorded as ``opted_out``.
    """
    key = idempotency_key(recipient, kind, subject, slot)
    session = uow.session
    if session.scalar(select(Notification.id).where(Notification.idempotency_key == key)):
        return None
    reach = reach_of(uow, recipient)
    chosen = choose_channel(kind, reach, channel)
    now = uow.now()
    notification = Notification(
        id=uuid.uuid4(),
        idempotency_key=key,
        recipient_kind=recipient.kind,
        member_id=recipient.id if recipient.kind == "member" else None,
        staff_id=recipient.id if recipient.kind == "staff" else None,
        sealed_to=recipient.sealed,
        kind=kind,
        subject=subject[:120],
        slot=slot[:60],
        channel=chosen or channel or "sms",
        status="queued" if chosen else "opted_out",
        urgent=urgent,
        params=params,
        to_masked=reach.email_masked if chosen == "email" else reach.phone_masked,
        phone_hmac=reach.phone_hmac,
        due_at=due_at,
        tried=[],
        segments=0,
        attempts=0,
        correlation_id=correlation_id or uow.correlation_id,
        created_at=now,
    )
    try:
        with session.begin_nested():
            session.add(notification)
            session.flush()
    except IntegrityError:
        return None  # a concurrent call queued it first
    record(uow, notification, notification.status, detail=None if chosen else "no channel")
    if chosen and (due_at is None or due_at <= now):
        notification_id = notification.id
        uow.after_commit(lambda: dispatch(notification_id))
    return notification.id


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
    """Append one line to the message's history."""
    uow.session.add(
        NotificationEvent(
            notification_id=notification.id,
            member_id=notification.member_id,
            at=uow.now(),
            status=status,
            provider=provider,
            reference=reference,
            error=error[:300] if error else None,
            detail=detail[:200] if detail else None,
        )
    )
