"""A notify send worker that dies (SIGKILL) right after the provider accepted an SMS and
before the send is recorded. Run by test_notify_welcome with the backend's environment."""

from __future__ import annotations

import os
import signal
import sys
import uuid
from datetime import datetime, timedelta

from services.notify import sending
from services.notify.bootstrap import runtime
from services.notify.channels.base import OutgoingSms
from services.notify.channels.files import FileEmailChannel, FileSmsChannel
from services.notify.rules import Rules


class DiesAfterAccepting:
    """The file channel, but the process is killed once the line is written."""

    name = "file"
    limits = ()
    settle_after = timedelta(0)

    def __init__(self, inner: FileSmsChannel) -> None:
        self.inner = inner

    def send(self, sms: OutgoingSms) -> str:
        self.inner.send(sms)
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable")

    def find(self, sms: OutgoingSms, since: datetime) -> str | None:
        return self.inner.find(sms, since)


def main(notification_id: str) -> None:
    rt = runtime()
    out = rt.settings.outbox_dir
    sender = sending.Sender(
        sealer=rt.sealer,
        providers=[DiesAfterAccepting(FileSmsChannel(out))],  # type: ignore[list-item]
        email=FileEmailChannel(out),
        rules=Rules(quiet_start=None, quiet_end=None),
        district=rt.settings.district,
    )
    with rt.uow() as uow:
        sending.send_notification(uuid.UUID(notification_id), uow, sender)


if __name__ == "__main__":
    main(sys.argv[1])
