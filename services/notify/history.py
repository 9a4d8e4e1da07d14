"""The sweep that hands over messages that are due and that no send task is expected for
(what notify did, each message with its history and the counts, is read in
:mod:`services.notify.views`)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import or_, select, update

from services.notify.messages import WAITING
from services.notify.models import Notification
from services.notify.policy import STRANDED_SENDING
from shared.db import UnitOfWork

#: How long after a message was handed to the send task (or after a retry was due) the
#: sweep assumes that task was lost and hands it over again. Long enough for a worker
#: backlog after a 20,000-member reminder slot; a second task would be harmless (the claim)
#: but wasted.
STALE_DISPATCH = timedelta(minutes=5)


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
