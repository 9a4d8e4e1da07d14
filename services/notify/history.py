"""What notify did: each message with its history, the operator's counts, and the sweep that
hands over messages that are due and that no send task is expected for."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import func, or_, select, update

from services.notify.claims import STRANDED_SENDING
from services.notify.messages import WAITING
from services.notify.models import Contact, Notification, NotificationEvent, StaffContact
from shared.db import UnitOfWork, messaging_stats

#: How long after a message was handed to the send task (or after a retry was due) the
#: sweep assumes that task was lost and hands it over again. Long enough for a worker
#: backlog after a 20,000-member reminder slot; a second task would be harmless (the claim)
#: but wasted.
STALE_DISPATCH = timedelta(minutes=5)


def message_view(n: Notification, events: list[NotificationEvent]) -> dict[str, Any]:
    """A message as people may see it: masked address, no parameters, its history."""
    return {
        "id": str(n.id),
        "kind": n.kind,
        "channel": n.channel,
        "status": n.status,
        "to": n.to_masked,
        "member_id": str(n.member_id) if n.member_id else None,
        "urgent": n.urgent,
        "due_at": n.due_at.isoformat() if n.due_at else None,
        "provider": n.provider,
        "provider_ref": n.provider_ref,
        "attempts": n.attempts,
        "segments": n.segments,
        "merged_into": str(n.merged_into) if n.merged_into else None,
        "correlation_id": str(n.correlation_id) if n.correlation_id else None,
        "created_at": n.created_at.isoformat(),
        "sent_at": n.sent_at.isoformat() if n.sent_at else None,
        "history": [
            {
                "at": e.at.isoformat(),
                "status": e.status,
                "provider": e.provider,
                "reference": e.reference,
                "error": e.error,
                "detail": e.detail,
            }
            for e in events
        ],
    }


#: Messages read per round when a scope filter drops some of them.
_PAGE = 500
Keep = Callable[[list[Notification]], list[Notification]]


def messages(
    uow: UnitOfWork,
    *,
    member_id: uuid.UUID | None = None,
    correlation_id: uuid.UUID | None = None,
    limit: int = 200,
    keep: Keep | None = None,
) -> list[dict[str, Any]]:
    """A member's messages, or those one correlation id caused, oldest first.

    ``keep`` narrows each page read to what the caller may see (a district operator: its
    district's recipients); pages are read until ``limit`` messages are kept, so the
    limit counts visible messages, not the ones dropped.
    """
    query = select(Notification).order_by(Notification.created_at, Notification.id)
    if member_id is not None:
        query = query.where(Notification.member_id == member_id)
    if correlation_id is not None:
        query = query.where(Notification.correlation_id == correlation_id)
    if keep is None:
        found = list(uow.session.scalars(query.limit(limit)))
    else:
        found = []
        for start in itertools.count(0, _PAGE):
            page = list(uow.session.scalars(query.limit(_PAGE).offset(start)))
            found += keep(page)
            if len(page) < _PAGE or len(found) >= limit:
                break
        found = found[:limit]
    events: dict[uuid.UUID, list[NotificationEvent]] = {n.id: [] for n in found}
    if found:
        for e in uow.session.scalars(
            select(NotificationEvent)
            .where(NotificationEvent.notification_id.in_(list(events)))
            .order_by(NotificationEvent.id)
        ):
            events[e.notification_id].append(e)
    return [message_view(n, events[n.id]) for n in found]


def due(uow: UnitOfWork, limit: int = 1000) -> list[uuid.UUID]:
    """Messages to hand to the send task now, marked as handed over (the caller commits,
    then dispatches): waiting ones whose time has come and that no task is expected for —
    deferred ones, and ones whose task was lost — and ones left ``sending`` by a worker
    that died. A message a task was handed recently is not handed over again."""
    now = uow.now()
    no_task = or_(
        Notification.dispatched_at.is_(None), Notification.dispatched_at < now - STALE_DISPATCH
    )
    query = (
        select(Notification.id)
        .where(
            no_task,
            or_(
                Notification.status.in_(WAITING)
                & or_(Notification.due_at.is_(None), Notification.due_at <= now),
                (Notification.status == "sending")
                & (Notification.attempted_at < now - STRANDED_SENDING),
            ),
        )
        .order_by(Notification.due_at, Notification.created_at)
        .limit(limit)
    )
    ids = list(uow.session.scalars(query))
    if ids:
        uow.session.execute(
            update(Notification)
            .where(Notification.id.in_(ids), no_task)
            .values(dispatched_at=now)
            .execution_options(synchronize_session=False)
        )
    return ids


def stats(uow: UnitOfWork) -> dict[str, int]:
    """The operator's counts (``GET /api/v1/ops/notify``)."""
    session = uow.session
    count = select(func.count()).select_from(Notification)
    by_status = dict(
        session.execute(
            select(Notification.status, func.count()).group_by(Notification.status)
        ).all()
    )
    return {
        "contacts": session.scalar(select(func.count()).select_from(Contact)) or 0,
        "staff_contacts": session.scalar(select(func.count()).select_from(StaffContact)) or 0,
        "messages": sum(int(n) for n in by_status.values()),
        "messages_sent": int(by_status.get("sent", 0)) + int(by_status.get("delivered", 0)),
        # due now and not yet handed over: the work the send workers have in front of them
        "messages_due": session.scalar(
            count.where(
                Notification.status.in_(WAITING),
                or_(Notification.due_at.is_(None), Notification.due_at <= uow.now()),
            )
        )
        or 0,
        **{f"messages_{status}": int(n) for status, n in sorted(by_status.items())},
        **messaging_stats(uow),
    }


def summary(uow: UnitOfWork) -> dict[str, Any]:
    """Messages per kind and status, and how many quiet hours deferred and caps merged."""
    session = uow.session
    per_kind: dict[str, dict[str, int]] = {}
    for kind, status, n in session.execute(
        select(Notification.kind, Notification.status, func.count()).group_by(
            Notification.kind, Notification.status
        )
    ):
        per_kind.setdefault(kind, {})[status] = int(n)
    deferred = session.scalar(
        select(func.count(func.distinct(NotificationEvent.notification_id))).where(
            NotificationEvent.status == "deferred",
            NotificationEvent.detail.like("quiet hours%"),
        )
    )
    merged = session.scalar(
        select(func.count()).select_from(Notification).where(Notification.merged_into.is_not(None))
    )
    segments = session.scalar(
        select(func.coalesce(func.sum(Notification.segments), 0)).where(
            Notification.channel == "sms", Notification.status.in_(("sent", "delivered"))
        )
    )
    by_channel = dict(
        session.execute(
            select(Notification.channel, func.count())
            .where(Notification.status.in_(("sent", "delivered")))
            .group_by(Notification.channel)
        ).all()
    )
    return {
        "per_kind": dict(sorted(per_kind.items())),
        "sent": {k: int(v) for k, v in by_channel.items()},
        "sms_segments": int(segments or 0),
        "deferred_by_quiet_hours": int(deferred or 0),
        "merged_by_caps": int(merged or 0),
    }
