"""Where messages leave the system: one adapter per channel, a recording fake for tests.

The embedded default writes SMS as JSON lines under ``$SERVICEMONTH_HOME/outbox/``, one
line per message, with the rendered text and the masked number. The out-id (our message
id) is written with each line so a send that was cut short can be reconciled, not resent.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class OutgoingSms:
    out_id: str
    phone: str
    phone_masked: str
    kind: str
    text: str


class SmsChannel(Protocol):
    name: str

    def send(self, sms: OutgoingSms) -> str:
        """Hand ``sms`` over; return the provider's reference."""

    def find(self, out_id: str) -> str | None:
        """The provider reference of an earlier send of ``out_id``, if it happened."""


class FileSmsChannel:
    """Appends each SMS as one JSON line to ``<dir>/sms.jsonl`` (the number masked)."""

    name = "file"

    def __init__(self, directory: Path) -> None:
        self.path = directory / "sms.jsonl"

    def send(self, sms: OutgoingSms) -> str:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(
            {"out_id": sms.out_id, "to": sms.phone_masked, "kind": sms.kind, "text": sms.text},
            ensure_ascii=False,
        )
        with open(self.path, "a", encoding="utf-8") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)  # whole lines, even from several workers
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        return f"file:{sms.out_id}"

    def find(self, out_id: str) -> str | None:
        if not self.path.exists():
            return None
        needle = f'"out_id": "{out_id}"'
        with open(self.path, encoding="utf-8") as fh:
            return f"file:{out_id}" if any(needle in line for line in fh) else None


@dataclass
class RecordingSmsChannel:
    """A fake that remembers what it was given (unit tests)."""

    name: str = "recording"
    sent: list[OutgoingSms] = field(default_factory=list)

    def send(self, sms: OutgoingSms) -> str:
        self.sent.append(sms)
        return f"rec:{sms.out_id}"

    def find(self, out_id: str) -> str | None:
        return next((f"rec:{s.out_id}" for s in self.sent if s.out_id == out_id), None)
