"""Notify's Celery app and tasks: each decodes its arguments, builds a command and hands it
to the process's bus (:func:`services.notify.bootstrap.bus`)."""

from __future__ import annotations

import uuid

from celery import Task

from services.notify.batch import SEND_BATCH_TASK
from services.notify.bootstrap import bus
from services.notify.commands import RunReminderSlots, SendNotification, SendNotifications
from services.notify.messages import SEND_TASK
from shared.workers import make_celery, task_queue

app = make_celery("notify")


@app.task(  # type: ignore[untyped-decorator]
    bind=True,
    name=SEND_TASK,
    autoretry_for=(OSError,),  # the database's outages: the base task
    retry_backoff=True,
    max_retries=12,
)
def send(self: Task, notification_id: str) -> str:
    """Send one message; a transient provider error comes back after a short backoff."""
    outcome = bus().handle(SendNotification(notification_id=uuid.UUID(notification_id)))
    if outcome.retry_in is not None:
        raise self.retry(countdown=outcome.retry_in, max_retries=None)
    return outcome.status


@app.task(  # type: ignore[untyped-decorator]
    name=SEND_BATCH_TASK,
    autoretry_for=(OSError,),  # the database's outages: the base task
    retry_backoff=True,
    max_retries=12,
)
def send_batch(notification_ids: list[str]) -> dict[str, int]:
    """Send many messages (claimed and recorded per batch, the calls concurrent); one that
    asks to be tried again later comes back as its own send task after its backoff."""
    notify = bus()
    ids = tuple(uuid.UUID(i) for i in notification_ids)
    outcomes = notify.handle(SendNotifications(notification_ids=ids))
    queue = task_queue("notify", notify.deps.runtime.settings)
    counts: dict[str, int] = {}
    for notification_id, outcome in outcomes.items():
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
        if outcome.retry_in is not None:
            send.apply_async(
                args=[str(notification_id)],
                countdown=outcome.retry_in,
                queue=queue,
                exchange=queue,
                routing_key=queue,
            )
    return counts


# --- reminders --------------------------------------------------------------------------
SWEEP_REMINDERS = "notify.sweep_reminders"
#: What the deployment's scheduler fires, and how often (seconds).
SWEEPS = {SWEEP_REMINDERS: 300.0}


@app.task(name=SWEEP_REMINDERS)  # type: ignore[untyped-decorator]
def sweep_reminders() -> dict[str, int]:
    """Queue every reminder slot that is due (the runtime's clock); each slot once."""
    return dict(bus().handle(RunReminderSlots()).queued)
