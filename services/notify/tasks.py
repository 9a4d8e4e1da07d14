"""Notify's Celery app and tasks: thin shells that decode and call a handler."""

from __future__ import annotations

import uuid

from services.notify import handlers, runtime
from services.notify.channels import FileSmsChannel, SmsChannel
from shared.runtime import Runtime
from shared.workers import make_celery

app = make_celery("notify")


def sms_channel(rt: Runtime) -> SmsChannel:
    return FileSmsChannel(rt.settings.outbox_dir)


@app.task(  # type: ignore[untyped-decorator]
    name=handlers.SEND_TASK, autoretry_for=(OSError,), retry_backoff=True, max_retries=5
)
def send(notification_id: str) -> str:
    rt = runtime()
    with rt.uow() as uow:
        return handlers.send_notification(
            uuid.UUID(notification_id), uow, rt.sealer, sms_channel(rt)
        )
