"""The embedded default: messages written to ``$SERVICEMONTH_HOME/outbox/`` instead of sent.

SMS go to ``sms.jsonl``, one JSON line per message, under an exclusive lock and fsynced,
so several workers never interleave half lines and a line written is a line kept. E-mails
go to ``email/<out-id>.eml``, written to a temporary file and renamed, so a file that
exists is a whole message. Only masked numbers and addresses are written — the recipient's,
and every phone, ID number or address in the text and parameters (a community contact's
number in ``pairing_made``), through :func:`shared.pii.redact` — because the outbox is read
by operators and kept with the demo. The real provider call gets the real text.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

from services.notify.channels.base import Limit, OutgoingEmail, OutgoingSms
from services.notify.channels.mime import build_message, check_out_id, message_id
from shared.clock import Clock, SystemClock
from shared.pii import redact

DEFAULT_SENDER = "在职党员进社区服务月 <noreply@servicemonth.invalid>"


class FileSmsChannel:
    """Appends each SMS as one JSON line to ``<directory>/sms.jsonl`` (numbers masked)."""

    name = "file"
    limits: tuple[Limit, ...] = ()
    settle_after = timedelta(0)  # a line written is a line found

    def __init__(self, directory: Path, clock: Clock | None = None) -> None:
        self.path = directory / "sms.jsonl"
        self.clock = clock or SystemClock()

    def send(self, sms: OutgoingSms) -> str:
        line = json.dumps(
            {
                "out_id": sms.out_id,
                "to": sms.phone_masked,
                "kind": sms.kind,
                "template_code": sms.template_code,
                "params": {name: redact(value) for name, value in sms.params.items()},
                "text": redact(sms.text),
                "segments": sms.segments,
                "at": self.clock.now().isoformat(),
            },
            ensure_ascii=False,
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)  # whole lines, even from several workers
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        return f"file:{sms.out_id}"

    def find(self, sms: OutgoingSms, since: datetime) -> str | None:
        if not self.path.exists():
            return None
        with open(self.path, encoding="utf-8") as fh:
            for line in fh:
                if sms.out_id in line and _out_id(line) == sms.out_id:
                    return f"file:{sms.out_id}"
        return None


class FileEmailChannel:
    """Writes each e-mail as ``<directory>/email/<out-id>.eml`` (the address masked)."""

    name = "file"

    def __init__(
        self, directory: Path, sender: str = DEFAULT_SENDER, clock: Clock | None = None
    ) -> None:
        self.directory = directory / "email"
        self.sender = sender
        self.clock = clock or SystemClock()

    def path(self, out_id: str) -> Path:
        return self.directory / f"{check_out_id(out_id)}.eml"

    def send(self, mail: OutgoingEmail) -> str:
        shown = replace(
            mail,
            subject=redact(mail.subject),
            text=redact(mail.text),
            html=redact(mail.html) if mail.html is not None else None,
        )
        msg = build_message(shown, self.sender, mail.to_masked, self.clock.now())
        target = self.path(mail.out_id)
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(msg.as_bytes())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)  # atomic: readers see no file or the whole message
        return str(msg["Message-ID"])

    def find(self, mail: OutgoingEmail) -> str | None:
        if self.path(mail.out_id).exists():
            return message_id(mail.out_id, self.sender)
        return None


def _out_id(line: str) -> str | None:
    try:
        value = json.loads(line).get("out_id")
    except (ValueError, AttributeError):
        return None  # a torn line left by a crash: not a send
    return value if isinstance(value, str) else None
