"""A notify batch send worker that dies (SIGKILL) once the provider has accepted a few of
the batch's SMS, with other calls of the batch in flight and none recorded. Run by
test_notify_batch with the backend's environment: ``notify_killed_batch.py KILL_AFTER ID...``."""

from __future__ import annotations

import os
import signal
import sys
import threading
import uuid
from datetime import datetime, timedelta

from services.notify import batch, sending
from services.notify.bootstrap import runtime
from services.notify.channels.base import OutgoingSms
from services.notify.channels.files import FileEmailChannel, FileSmsChannel
from services.notify.rules import Rules


class DiesAfterAccepting:
    """The file channel, but the process is killed once ``after`` lines are written."""

    name = "file"
    limits = ()
    settle_after = timedelta(0)

    def __init__(self, inner: FileSmsChannel, after: int) -> None:
        self.inner = inner
        self.after = after
        self.accepted = 0
        self.lock = threading.Lock()

    def send(self, sms: OutgoingSms) -> str:
        ref = self.inner.send(sms)
        with self.lock:
            self.accepted += 1
            if self.accepted >= self.after:
                os.kill(os.getpid(), signal.SIGKILL)
        return ref

    def find(self, sms: OutgoingSms, since: datetime) -> str | None:
        return self.inner.find(sms, since)


def main(after: int, ids: list[str]) -> None:
    rt = runtime()
    out = rt.settings.outbox_dir
    sender = sending.Sender(
        sealer=rt.sealer,
        providers=[DiesAfterAccepting(FileSmsChannel(out), after)],  # type: ignore[list-item]
        email=FileEmailChannel(out),
        rules=Rules(quiet_start=None, quiet_end=None),
        district=rt.settings.district,
    )
    batch.send_many([uuid.UUID(i) for i in ids], rt, sender)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2:])
