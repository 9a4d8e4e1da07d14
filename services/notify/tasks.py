"""Notify's Celery app and tasks: thin shells that decode and call a handler."""

from __future__ import annotations

import uuid

from celery import Task

from services.notify import runtime, sending
from services.notify.messages import SEND_TASK
from services.notify.rules import Rules
from shared.runtime import Runtime
from shared.workers import make_celery

app = make_celery("notify")


_SENDERS: dict[int, tuple[Runtime, sending.Sender]] = {}


def _sender(rt: Runtime) -> sending.Sender:
    from services.notify.channels import email_channel, sms_providers

    return sending.Sender(
        sealer=rt.sealer,
        providers=list(sms_providers(rt.settings, rt.clock)),
        email=email_channel(rt.settings, rt.clock),
        rules=Rules.from_settings(rt.settings),
        district=rt.settings.district,
        reports_dir=rt.settings.reports_dir,
    )


def sender(rt: Runtime) -> sending.Sender:
    """The providers, channels and rules of ``rt``'s settings (made once per runtime)."""
    entry = _SENDERS.get(id(rt))
    if entry is None or entry[0] is not rt:
        entry = _SENDERS[id(rt)] = (rt, _sender(rt))
    return entry[1]


@app.task(  # type: ignore[untyped-decorator]
    bind=True,
    name=SEND_TASK,
    autoretry_for=(OSError,),
    retry_backoff=True,
    max_retries=12,
)
def send(self: Task, notification_id: str) -> str:
    """Send one message; a transient provider error comes back after a short backoff."""
    rt = runtime()
    with rt.uow() as uow:
        outcome = sending.send_notification(uuid.UUID(notification_id), uow, sender(rt))
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
    from services.notify.reminders import sweep

    return dict(sweep(runtime()).queued)
