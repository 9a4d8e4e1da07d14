"""Notify's Celery app and tasks: each decodes its arguments, builds a command and hands it
to the process's bus (:func:`services.notify.bootstrap.bus`)."""

from __future__ import annotations

import uuid

from celery import Task

from services.notify.bootstrap import bus
from services.notify.commands import RunReminderSlots, SendNotification
from services.notify.messages import SEND_TASK
from shared.workers import make_celery

app = make_celery("notify")


@app.task(  # type: ignore[untyped-decorator]
    bind=True,
    name=SEND_TASK,
    autoretry_for=(OSError,),
    retry_backoff=True,
    max_retries=12,
)
def send(self: Task, notification_id: str) -> str:
    """Send one message; a transient provider error comes back after a short backoff."""
    outcome = bus().handle(SendNotification(notification_id=uuid.UUID(notification_id)))
    if outcome.retry_in is not None:
        raise self.retry(countdown=outcome.retry_in, max_retries=None)
    return outcome.status


# --- reminders --------------------------------------------------------------------------
SWEEP_REMINDERS = "notify.sweep_reminders"
#: What the deployment's scheduler fires, and how often (seconds).
SWEEPS = {SWEEP_REMINDERS: 300.0}


@app.task(name=SWEEP_REMINDERS)  # type: ignore[untyped-decorator]
def sweep_reminders() -> dict[str, int]:
    """Queue every reminder slot that is due (the runtime's clock); each slot once."""
    return dict(bus().handle(RunReminderSlots()).queued)
