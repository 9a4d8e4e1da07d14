"""What the chaos month talks to outside the product: an SMS provider that answers as
Aliyun's dysmsapi does and an SMTP server, both on loopback, both unreliable on purpose,
both counting on their side what they accepted."""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.support import free_port, json_server

#: Longer than the product's SMS client waits (services/notify/channels: 10 s).
TIMEOUT_DELAY = 11.0


@dataclass
class SmsProvider:
    """Aliyun's SendSms and QuerySendDetails. Part of the time it fails (a transient error,
    nothing sent) or accepts a message and answers only after the client gave up (sent, but
    the sender cannot know: it must find out with QuerySendDetails, never send it again)."""

    fail: float = 0.05
    slow: float = 0.02
    rng: random.Random = field(default_factory=lambda: random.Random(2016))
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: OutId → how many times it was accepted (more than 1: a message sent twice)
    accepted: Counter[str] = field(default_factory=Counter)
    #: (phone, template) → accepted sends
    by_kind: Counter[tuple[str, str]] = field(default_factory=Counter)
    sent: list[dict[str, str]] = field(default_factory=list)
    failures: int = 0
    timeouts: int = 0

    def answer(self, action: str, params: dict[str, str]) -> tuple[int, dict[str, Any], float]:
        if action == "SendSms":
            with self.lock:
                roll = self.rng.random()
                if roll < self.fail:
                    self.failures += 1
                    busy = {"Code": "isp.SYSTEM_ERROR", "Message": "busy", "RequestId": "r"}
                    return 200, busy, 0
                self.accepted[params["OutId"]] += 1
                self.by_kind[(params["PhoneNumbers"], params["TemplateCode"])] += 1
                self.sent.append(params)
                biz = {"Code": "OK", "Message": "OK", "BizId": f"{len(self.sent)}^0"}
                if roll < self.fail + self.slow:
                    self.timeouts += 1
                    return 200, biz | {"RequestId": "r"}, TIMEOUT_DELAY
                return 200, biz | {"RequestId": "r"}, 0
        if action == "QuerySendDetails":
            with self.lock:
                found = [
                    {
                        "PhoneNum": p["PhoneNumbers"],
                        "SendStatus": 3,
                        "TemplateCode": p["TemplateCode"],
                        "OutId": p["OutId"],
                        "SendDate": "2016-07-01 10:00:00",
                        "Content": "…",
                    }
                    for p in self.sent
                    if p["PhoneNumbers"] == params.get("PhoneNumber")
                ]
            details = {"SmsSendDetailDTO": found}
            body = {"Code": "OK", "RequestId": "r", "TotalCount": str(len(found))}
            return 200, body | {"SmsSendDetailDTOs": details}, 0
        return 404, {"Code": "InvalidAction.NotFound", "Message": action}, 0

    def counts(self) -> tuple[Counter[str], Counter[tuple[str, str]]]:
        """:attr:`accepted` and :attr:`by_kind` so far, copied under the lock (the server's
        threads go on adding while the run reconciles)."""
        with self.lock:
            return Counter(self.accepted), Counter(self.by_kind)


@contextmanager
def sms_provider(provider: SmsProvider) -> Iterator[str]:
    """``provider`` on a loopback port: its endpoint URL."""

    def answer(path: str, headers: Any, _raw: bytes) -> tuple[int, dict[str, Any], float]:
        action = headers.get("x-acs-action") or ""
        return provider.answer(action, dict(parse_qsl(urlsplit(path).query)))

    with json_server(answer) as url:
        yield url


@dataclass
class MailServer:
    """Takes e-mail, refusing a share of it with a temporary error (451)."""

    refuse: float = 0.1
    rng: random.Random = field(default_factory=lambda: random.Random(37))
    accepted: Counter[str] = field(default_factory=Counter)  # Message-ID → times
    refusals: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.rng.random() < self.refuse:
            self.refusals += 1
            return "451 4.3.0 try again later"
        content = envelope.original_content or b""
        key = next(
            (
                line.split(b":", 1)[1].strip().decode("ascii", "replace")
                for line in content.splitlines()
                if line.lower().startswith(b"message-id:")
            ),
            str(hash(content)),
        )
        with self.lock:
            self.accepted[key] += 1
        return "250 OK"

    def counts(self) -> Counter[str]:
        """:attr:`accepted` so far, copied under the lock (the server's thread goes on)."""
        with self.lock:
            return Counter(self.accepted)


@contextmanager
def mail_server(handler: MailServer) -> Iterator[int]:
    """``handler`` as an SMTP server on a loopback port: the port."""
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()
