"""Queue many messages at once: :func:`services.notify.messages.queue_message`, set-based.

A reminder slot speaks to up to 20,000 members of a district. One message at a time would
be 20,000 look-ups, savepoints and inserts; this does the same in a handful of statements:
one look-up of the idempotency keys already queued, one of the recipients' channels, one
bulk insert of the messages and one of their history. The rules are queue_message's own
(same key, same channel choice, ``opted_out`` for a recipient who accepts no channel, the
send task enqueued after commit for what is due), so a message queued either way is the
same message, and queueing it the other way later is a no-op.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select

from services.notify.messages import (
    Reach,
    Recipient,
    choose_channel,
    dispatch,
    idempotency_key,
)
from services.notify.models import Contact, Notification, NotificationEvent, StaffContact
from shared.db import UnitOfWork

CHUNK = 5000  # ids per IN (...) list: well below every backend's parameter limit


@dataclass(frozen=True)
class Outgoing:
    """One message to queue (the keyword arguments of ``queue_message``)."""

    recipient: Recipient
    kind: str
    subject: str
    slot: str
    params: dict[str, Any]
    due_at: datetime | None = None
    urgent: bool = False


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def reaches(uow: UnitOfWork, recipients: Iterable[Recipient]) -> dict[Recipient, Reach]:
    """How each recipient can be reached, as ``messages.reach_of`` says, in a few queries."""
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
    return [choose_channel(m.kind, reach[m.recipient]) for m in messages]


def queue_messages(uow: UnitOfWork, messages: Sequence[Outgoing]) -> int:
    """Queue every message not queued before; return how many are new. The caller commits."""
    keyed = {
        idempotency_key(m.recipient, m.kind, m.subject, m.slot): m for m in messages
    }  # a message listed twice is queued once
    keys = list(keyed)
    for chunk in _chunks(keys):
        for key in uow.session.scalars(
            select(Notification.idempotency_key).where(Notification.idempotency_key.in_(chunk))
        ):
            keyed.pop(key, None)
    if not keyed:
        return 0
    reach = reaches(uow, (m.recipient for m in keyed.values()))
    now = uow.now()
    rows: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    due: list[uuid.UUID] = []
    for key, m in keyed.items():
        r = reach[m.recipient]
        channel = choose_channel(m.kind, r)
        notification_id = uuid.uuid4()
        status = "queued" if channel else "opted_out"
        rows.append(
            {
                "id": notification_id,
                "idempotency_key": key,
                "recipient_kind": m.recipient.kind,
                "member_id": m.recipient.id if m.recipient.kind == "member" else None,
                "staff_id": m.recipient.id if m.recipient.kind == "staff" else None,
                "sealed_to": m.recipient.sealed,
                "kind": m.kind,
                "subject": m.subject[:120],
                "slot": m.slot[:60],
                "channel": channel or "sms",
                "status": status,
                "urgent": m.urgent,
                "params": m.params,
                "to_masked": r.email_masked if channel == "email" else r.phone_masked,
                "phone_hmac": r.phone_hmac,
                "due_at": m.due_at,
                "tried": [],
                "segments": 0,
                "attempts": 0,
                "correlation_id": uow.correlation_id,
                "created_at": now,
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
        if channel and (m.due_at is None or m.due_at <= now):
            due.append(notification_id)
    for chunk in _chunks(rows):
        uow.session.execute(insert(Notification), list(chunk))
    for chunk in _chunks(history):
        uow.session.execute(insert(NotificationEvent), list(chunk))

    def hand_over() -> None:
        for notification_id in due:
            dispatch(notification_id)

    uow.after_commit(hand_over)
    return len(rows)
