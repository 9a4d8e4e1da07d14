"""Recording fakes of the SMS providers and the e-mail channel, for unit tests.

They remember every attempt and every accepted message, and can be told to fail: queue
outcomes with ``fail_next`` (an exception, or ``None`` for "accept"), or give ``fail_with``
a function deciding per message (``flaky`` builds one that times out at a given rate).
``after_accept`` runs once the fake has *accepted* a message and before ``send`` returns:
raise from it to play a worker killed after the provider took the message.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from services.notify.channels.base import (
    Limit,
    OutgoingEmail,
    OutgoingSms,
    TransientProviderError,
)
from services.notify.channels.mime import message_id

FailWith = Callable[[OutgoingSms], BaseException | None]


@dataclass(eq=False)
class RecordingSmsProvider:
    """A fake SMS provider: ``sent`` holds what it accepted, ``attempts`` every call."""

    name: str = "recording"
    limits: tuple[Limit, ...] = ()
    settle_after: timedelta = timedelta(0)
    fail_with: FailWith | None = None
    after_accept: Callable[[OutgoingSms], None] | None = None
    sent: list[OutgoingSms] = field(default_factory=list)
    attempts: list[OutgoingSms] = field(default_factory=list)
    failures: deque[BaseException | None] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def flaky(cls, name: str, rate: float, seed: int = 0) -> RecordingSmsProvider:
        """A provider that times out on about ``rate`` of its calls (reproducibly)."""
        rng = random.Random(seed)

        def timeout(sms: OutgoingSms) -> BaseException | None:
            if rng.random() < rate:
                return TransientProviderError("Timeout", "simulated timeout", provider=name)
            return None

        return cls(name=name, fail_with=timeout)

    def fail_next(self, *outcomes: BaseException | None) -> None:
        """The next calls' outcomes, in order: an exception to raise, or None to accept."""
        self.failures.extend(outcomes)

    def send(self, sms: OutgoingSms) -> str:
        with self._lock:
            self.attempts.append(sms)
            if self.failures:
                error = self.failures.popleft()
            else:
                error = self.fail_with(sms) if self.fail_with else None
            if error is not None:
                raise error
            self.sent.append(sms)
        if self.after_accept is not None:
            self.after_accept(sms)
        return f"{self.name}:{sms.out_id}"

    def find(self, sms: OutgoingSms, since: datetime) -> str | None:
        with self._lock:
            found = any(s.out_id == sms.out_id for s in self.sent)
        return f"{self.name}:{sms.out_id}" if found else None

    def texts(self) -> list[str]:
        return [s.text for s in self.sent]


@dataclass(eq=False)
class RecordingEmailChannel:
    """A fake e-mail channel: ``sent`` holds what it accepted, ``attempts`` every call."""

    name: str = "recording"
    sender: str = "noreply@servicemonth.invalid"
    fail_with: Callable[[OutgoingEmail], BaseException | None] | None = None
    after_accept: Callable[[OutgoingEmail], None] | None = None
    sent: list[OutgoingEmail] = field(default_factory=list)
    attempts: list[OutgoingEmail] = field(default_factory=list)
    failures: deque[BaseException | None] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def fail_next(self, *outcomes: BaseException | None) -> None:
        self.failures.extend(outcomes)

    def send(self, mail: OutgoingEmail) -> str:
        with self._lock:
            self.attempts.append(mail)
            if self.failures:
                error = self.failures.popleft()
            else:
                error = self.fail_with(mail) if self.fail_with else None
            if error is not None:
                raise error
            self.sent.append(mail)
        if self.after_accept is not None:
            self.after_accept(mail)
        return message_id(mail.out_id, self.sender)

    def find(self, mail: OutgoingEmail) -> str | None:
        with self._lock:
            found = any(m.out_id == mail.out_id for m in self.sent)
        return message_id(mail.out_id, self.sender) if found else None
