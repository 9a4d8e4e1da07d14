"""What every part of notify says about a message: who it is for, its key, its statuses,
how it reaches the send task, which channel it takes, its history, and the one conditional
write every status change goes through (:func:`move`).

Messages are queued by :mod:`services.notify.bulk` (one or many at a time, the same rules)
and sent by :mod:`services.notify.sending` as :mod:`services.notify.policy` decides.
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
from typing import Any, Literal

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.orm.attributes import set_committed_value

from services.notify.models import Notification, NotificationEvent
from services.notify.policy import RecentSms
from shared.config import Settings
from shared.db import UnitOfWork
from shared.events import NotificationChanged
from shared.pii import redact

Dispatch = Callable[[uuid.UUID], None]

#: Kinds that go by e-mail whenever the recipient has an address (files attached).
EMAIL_KINDS = frozenset({"report_ready"})
#: Statuses from which a message may still be sent.
WAITING = ("queued", "deferred")
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


def celery_dispatch(settings: Settings) -> Dispatch:
    """Hand messages to notify's send task on the deployment's broker (the default dispatch
    :mod:`services.notify.bootstrap` wires; tests give their own)."""

    def dispatch(notification_id: uuid.UUID) -> None:
        from shared.workers import send_task

        send_task("notify", settings, SEND_TASK, str(notification_id))

    return dispatch


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
    """Append one line to the message's history (numbers and addresses in it masked).

    A plain INSERT in the caller's transaction: the line is never read back or changed, so
    it needs no ORM object (and no flush) of its own."""
    uow.session.execute(
        _HISTORY_INSERT,
        {
            "notification_id": notification.id,
            "member_id": notification.member_id,
            "at": uow.now(),
            "status": status,
            "provider": provider,
            "reference": reference,
            "error": redact(error)[:300] if error else None,
            "detail": redact(detail)[:200] if detail else None,
        },
    )


_HISTORY_INSERT = insert(NotificationEvent.metadata.tables[NotificationEvent.__tablename__])


# --- what the daily cap and the providers' limits count -----------------------------------


def same_recipient(n: Notification) -> Any:
    """The SQL condition "to ``n``'s recipient", a member or a staff contact (the daily cap,
    its only use, does not apply to a report subscriber: :func:`.policy.cap_day`)."""
    if n.member_id is not None:
        return Notification.member_id == n.member_id
    if n.staff_id is not None:
        return Notification.staff_id == n.staff_id
    raise ValueError(f"message {n.id} is to a sealed contact: no daily cap applies")


def recent_sms(
    uow: UnitOfWork,
    n: Notification,
    *,
    day: tuple[datetime, datetime] | None,
    since: datetime | None,
) -> list[RecentSms]:
    """Other messages gone (or going) out that the rules count before ``n`` is sent, in one
    query: SMS to ``n``'s recipient attempted within ``day`` (the cap; None: not counted),
    and anything to ``n``'s number attempted after ``since`` (the longest provider limit
    window; None: none). The policy applies its own conditions to these rows."""
    wanted = []
    if day is not None:
        wanted.append(
            and_(
                same_recipient(n),
                Notification.channel == "sms",
                Notification.attempted_at >= day[0],
                Notification.attempted_at < day[1],
            )
        )
    if since is not None and n.phone_hmac is not None:
        wanted.append(
            and_(Notification.phone_hmac == n.phone_hmac, Notification.attempted_at > since)
        )
    if not wanted:
        return []
    rows = uow.session.execute(
        select(
            Notification.member_id,
            Notification.staff_id,
            Notification.phone_hmac,
            Notification.channel,
            Notification.provider,
            Notification.kind,
            Notification.attempted_at,
        ).where(
            Notification.status.in_(SENT_LIKE),
            Notification.id != n.id,
            or_(*wanted),
        )
    )
    return [
        RecentSms(member, staff, phone, channel, provider, kind, at)
        for member, staff, phone, channel, provider, kind, at in rows
        if at is not None
    ]


# --- status writes ----------------------------------------------------------------------------


def move(
    uow: UnitOfWork,
    n: Notification,
    status: str,
    *,
    expect: str | None = None,
    rollback: bool = True,
    **values: Any,
) -> bool:
    """``n``'s status becomes ``status`` (with ``values``) only if it is still ``expect``
    (default: the status read) at the attempt count read; False otherwise, after rolling
    the transaction back (unless ``rollback`` is False: nothing was written either way).

    Every status write is this one conditional UPDATE: if another task changed the message
    meanwhile — claimed it, merged it into a digest, found it sent — nothing is written.
    So a message is never both sent and merged or opted out, and two tasks for one message
    send it once."""
    done = uow.session.execute(
        update(Notification)
        .where(
            Notification.id == n.id,
            Notification.status == (expect or n.status),
            Notification.attempts == n.attempts,
        )
        .values(status=status, **values)
        .execution_options(synchronize_session=False)
    )
    if not done.rowcount:  # type: ignore[attr-defined]
        if rollback:
            uow.session.rollback()
        return False
    for key, value in {"status": status, **values}.items():
        set_committed_value(n, key, value)  # in step with the row, without a second UPDATE
    return True


def emit_status(
    n: Notification, uow: UnitOfWork, district: str, cls: type[NotificationChanged]
) -> None:
    """The ``notification.*`` event of ``n``'s final status, in the caller's transaction."""
    uow.emit(
        cls(
            notification_id=n.id,
            member_id=n.member_id,
            kind=n.kind,
            channel="email" if n.channel == "email" else "sms",
            status=n.status,
            provider=n.provider,
        ),
        district=district,
    )
