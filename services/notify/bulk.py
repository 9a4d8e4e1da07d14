"""Queue messages: one per (recipient, kind, subject, slot), sent only after commit.

Everything in notify that wants someone told something — a triggered message
(:func:`queue_message`), a reminder slot to 20,000 members (:func:`queue_messages`), a
report — goes through one implementation, set-based: one look-up of the idempotency keys
already queued, one of the recipients' channels, one insert of the messages and one of
their history. A message is committed ``queued`` (``opted_out`` for a recipient who accepts
no channel); a key queued before is a no-op. The send task is enqueued only after the
commit, and only for what is due, through the ``dispatch`` the caller was given
(:mod:`services.notify.bootstrap` wires it): a message with a future ``due_at`` — or queued
without a ``dispatch`` — waits in the table for the consume process's sweep
(:func:`services.notify.history.due`; no broker ETAs). ``urgent`` (bypasses quiet hours,
not the daily cap) defaults to the kind's flag in ``templates/kinds.toml``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from services.notify.messages import (
    WAITING,
    Dispatch,
    Reach,
    Recipient,
    choose_channel,
    idempotency_key,
)
from services.notify.models import (
    SLOT_LENGTH,
    SUBJECT_LENGTH,
    Contact,
    Notification,
    NotificationEvent,
    StaffContact,
)
from services.notify.rendering import KINDS
from shared.db import UnitOfWork

CHUNK = 5000  # ids per IN (...) list: well below every backend's parameter limit


@dataclass(frozen=True)
class Outgoing:
    """One message to queue (the keyword arguments of :func:`queue_message`).

    ``subject`` is what the message is about (a wish id, a report id, ``-``); ``slot`` when
    it is for (a date, a calendar slot, ``-``). ``channel`` asks for ``sms`` or ``email``
    (by default SMS to a mobile, e-mail as the fallback); ``urgent`` None takes the kind's.
    """

    recipient: Recipient
    kind: str
    subject: str
    slot: str
    params: dict[str, Any]
    due_at: datetime | None = None
    urgent: bool | None = None
    channel: str | None = None
    correlation_id: uuid.UUID | None = None

    @property
    def key(self) -> str:
        return idempotency_key(self.recipient, self.kind, self.subject, self.slot)

    @property
    def is_urgent(self) -> bool:
        if self.urgent is not None:
            return self.urgent
        spec = KINDS.get(self.kind)
        return spec.urgent if spec is not None else False


@runtime_checkable
class BatchDispatch(Protocol):
    """A dispatch that can also hand many messages over at once (the batch send task)."""

    def __call__(self, notification_id: uuid.UUID) -> None: ...

    def many(self, notification_ids: Sequence[uuid.UUID]) -> None: ...


#: Messages per batch send task: a 20,000-member reminder slot is 40 tasks, not 20,000.
HAND_OVER = 1000


def hand_over(dispatch: Dispatch, notification_ids: Sequence[uuid.UUID]) -> None:
    """Hand committed messages to the send task: ``HAND_OVER`` at a time when ``dispatch``
    takes batches (:class:`BatchDispatch`, what :mod:`.bootstrap` wires), else one by one
    (what tests collect)."""
    if isinstance(dispatch, BatchDispatch):
        for start in range(0, len(notification_ids), HAND_OVER):
            dispatch.many(notification_ids[start : start + HAND_OVER])
        return
    for notification_id in notification_ids:
        dispatch(notification_id)


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def reaches(uow: UnitOfWork, recipients: Iterable[Recipient]) -> dict[Recipient, Reach]:
    """How each recipient can be reached, in a few queries."""
    wanted = list(dict.fromkeys(recipients))
    found: dict[tuple[str, uuid.UUID], Reach] = {}
    for kind, model, key in (
        ("member", Contact, Contact.member_id),
        ("staff", StaffContact, StaffContact.id),
    ):
        ids = [r.id for r in wanted if r.kind == kind]
        for chunk in _chunks(ids):
            rows = uow.session.execute(
                select(
                    key,
                    model.phone_masked,
                    model.phone_hmac,
                    model.email_masked,
                    model.sms_enabled,
                    model.email_enabled,
                    *([StaffContact.state] if model is StaffContact else []),
                ).where(key.in_(chunk))
            )
            for row in rows:
                if kind == "staff" and row.state != "active":
                    found[(kind, row[0])] = Reach(None, None, None, False, False, known=True)
                else:
                    found[(kind, row[0])] = Reach(*row[1:6], known=True)
    result = {}
    for r in wanted:
        if r.kind == "sealed":
            result[r] = Reach(r.phone_masked, None, None, True, True, known=False)
        elif r.kind == "member":
            result[r] = found.get((r.kind, r.id), Reach(None, None, None, True, True, False))
        else:
            result[r] = found.get((r.kind, r.id), Reach(None, None, None, False, False, True))
    return result


def channels(uow: UnitOfWork, messages: Sequence[Outgoing]) -> list[str | None]:
    """The channel each message would go by now (None: the recipient accepts none)."""
    reach = reaches(uow, (m.recipient for m in messages))
    return [choose_channel(m.kind, reach[m.recipient], m.channel) for m in messages]


def queue_messages(
    uow: UnitOfWork, messages: Sequence[Outgoing], dispatch: Dispatch | None = None
) -> int:
    """Queue every message not queued before; return how many are new. The caller commits;
    ``dispatch`` then hands the ones due now to the send task (None: the sweep will)."""
    return len(_queue(uow, messages, dispatch))


def queue_message(
    uow: UnitOfWork,
    *,
    recipient: Recipient,
    kind: str,
    subject: str,
    slot: str,
    params: dict[str, Any],
    urgent: bool | None = None,
    due_at: datetime | None = None,
    correlation_id: uuid.UUID | None = None,
    channel: str | None = None,
    dispatch: Dispatch | None = None,
) -> uuid.UUID | None:
    """Queue one message (see :class:`Outgoing`); None when it was queued before, here or
    by a concurrent transaction (the insert runs in a savepoint). The caller commits;
    ``dispatch`` then hands it to the send task if it is due (None: the sweep will)."""
    message = Outgoing(
        recipient, kind, subject, slot, params, due_at, urgent, channel, correlation_id
    )
    return _queue_one(uow, message, dispatch)


def waiting_message(uow: UnitOfWork, message: Outgoing) -> Notification | None:
    """``message`` as queued — now, or before by this or a concurrent transaction — locked
    for this transaction while it still waits to be sent; None once it has left (or opted
    out). A batch (a digest, a day's reports-in) grows by a conditional UPDATE of its
    params on a waiting status; the caller commits. A batch is due later: the sweep hands
    it over then."""
    _queue_one(uow, message, None)
    row = uow.session.scalar(
        select(Notification).where(Notification.idempotency_key == message.key).with_for_update()
    )
    return row if row is not None and row.status in WAITING else None


def _queue_one(uow: UnitOfWork, message: Outgoing, dispatch: Dispatch | None) -> uuid.UUID | None:
    """Queue ``message`` in a savepoint; its id, or None when it was queued before."""
    try:
        with uow.session.begin_nested():
            queued = _queue(uow, [message], dispatch)
    except IntegrityError:
        return None  # a concurrent call queued it first
    return queued.get(message.key)


def _queue(
    uow: UnitOfWork, messages: Sequence[Outgoing], dispatch: Dispatch | None
) -> dict[str, uuid.UUID]:
    """Insert the messages whose keys are new; their ids by key."""
    keyed = {m.key: m for m in messages}  # a message listed twice is queued once
    for chunk in _chunks(list(keyed)):
        for key in uow.session.scalars(
            select(Notification.idempotency_key).where(Notification.idempotency_key.in_(chunk))
        ):
            keyed.pop(key, None)
    if not keyed:
        return {}
    reach = reaches(uow, (m.recipient for m in keyed.values()))
    now = uow.now()
    rows: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    due: list[uuid.UUID] = []
    for key, m in keyed.items():
        r = reach[m.recipient]
        channel = choose_channel(m.kind, r, m.channel)
        notification_id = uuid.uuid4()
        status = "queued" if channel else "opted_out"
        dispatch_now = (
            dispatch is not None and channel is not None and (m.due_at is None or m.due_at <= now)
        )
        rows.append(
            {
                "id": notification_id,
                "idempotency_key": key,
                "recipient_kind": m.recipient.kind,
                "member_id": m.recipient.id if m.recipient.kind == "member" else None,
                "staff_id": m.recipient.id if m.recipient.kind == "staff" else None,
                "sealed_to": m.recipient.sealed,
                "kind": m.kind,
                "subject": m.subject[:SUBJECT_LENGTH],
                "slot": m.slot[:SLOT_LENGTH],
                "channel": channel or m.channel or "sms",
                "status": status,
                "urgent": m.is_urgent,
                "params": m.params,
                "to_masked": r.email_masked if channel == "email" else r.phone_masked,
                "phone_hmac": r.phone_hmac,
                "due_at": m.due_at,
                "tried": [],
                "segments": 0,
                "attempts": 0,
                "correlation_id": m.correlation_id or uow.correlation_id,
                "created_at": now,
                "dispatched_at": now if dispatch_now else None,
            }
        )
        history.append(
            {
                "notification_id": notification_id,
                "member_id": rows[-1]["member_id"],
                "at": now,
                "status": status,
                "detail": None if channel else "no channel",
            }
        )
        if dispatch_now:
            due.append(notification_id)
    for chunk in _chunks(rows):
        uow.session.execute(insert(Notification), list(chunk))
    for chunk in _chunks(history):
        uow.session.execute(insert(NotificationEvent), list(chunk))

    if due and dispatch is not None:
        send = dispatch
        uow.after_commit(lambda: hand_over(send, due))
    return {row["idempotency_key"]: row["id"] for row in rows}
