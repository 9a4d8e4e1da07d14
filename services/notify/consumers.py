"""The events notify listens to, and what it does with each."""

from __future__ import annotations

import uuid
from functools import partial

from services.notify import handlers
from services.notify.handlers import SEND_TASK
from shared.bus import Handler
from shared.events import (
    CommunityChanged,
    Event,
    MemberRegistered,
    MemberUpdated,
    MemberWithdrawn,
)
from shared.runtime import Runtime
from shared.workers import app_for, task_queue


def dispatcher(rt: Runtime) -> handlers.Dispatch:
    """Enqueue the send task on notify's own queue of ``rt``'s broker."""
    app = app_for("notify", rt.settings)
    queue = task_queue("notify", rt.settings)

    def dispatch(notification_id: uuid.UUID) -> None:
        app.send_task(SEND_TASK, args=[str(notification_id)], queue=queue)

    return dispatch


def handlers_for(rt: Runtime) -> dict[type[Event], list[Handler]]:
    dispatch = dispatcher(rt)
    return {
        MemberRegistered: [partial(handlers.welcome_member, dispatch=dispatch)],
        MemberUpdated: [handlers.keep_contact],
        MemberWithdrawn: [handlers.forget_member],
        CommunityChanged: [handlers.record_community],
    }


def periodic(rt: Runtime) -> None:
    """Re-enqueue messages whose send task was lost (a crash between commit and enqueue)."""
    dispatch = dispatcher(rt)
    with rt.uow() as uow:
        ids = handlers.stranded(uow)
    for notification_id in ids:
        dispatch(notification_id)
