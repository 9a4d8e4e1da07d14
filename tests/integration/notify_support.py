"""What notify's integration tests share: fake SMS providers (the only fake), a send loop
that plays the Celery worker's part, and shortcuts for applying events to notify."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from services.notify import messages, sending
from services.notify.channels.base import (
    Limit,
    OutgoingEmail,
    OutgoingSms,
    PermanentProviderError,
    TransientProviderError,
)
from services.notify.channels.files import FileEmailChannel, FileSmsChannel
from services.notify.rules import Rules
from shared.bus import EventConsumer
from shared.events import Event, envelope_for
from tests.support import consumer


@dataclass
class FakeProvider:
    """An SMS provider that accepts (and remembers) every SMS, or fails as told.

    ``timeouts`` is the share of calls that time out (seeded); a timed-out call may still
    have been accepted (``accept_on_timeout``), as with a real gateway.
    """

    name: str = "fake"
    limits: tuple[Limit, ...] = ()
    timeouts: float = 0.0
    accept_on_timeout: bool = False
    permanent: bool = False
    seed: int = 0
    accepted: list[OutgoingSms] = field(default_factory=list)
    calls: int = 0

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def send(self, sms: OutgoingSms) -> str:
        self.calls += 1
        if self.permanent:
            raise PermanentProviderError("isv.MOBILE_NUMBER_ILLEGAL", provider=self.name)
        if self.timeouts and self._rng.random() < self.timeouts:
            if self.accept_on_timeout:
                self.accepted.append(sms)
            raise TransientProviderError("timeout", "read timed out", provider=self.name)
        self.accepted.append(sms)
        return f"{self.name}:{sms.out_id}"

    def find(self, sms: OutgoingSms, since: datetime) -> str | None:
        hit = any(s.out_id == sms.out_id for s in self.accepted)
        return f"{self.name}:{sms.out_id}" if hit else None


@dataclass
class FakeEmail:
    name: str = "fake-email"
    sent: list[OutgoingEmail] = field(default_factory=list)

    def send(self, mail: OutgoingEmail) -> str:
        self.sent.append(mail)
        return f"<{mail.out_id}@test>"

    def find(self, mail: OutgoingEmail) -> str | None:
        return next((f"<{m.out_id}@test>" for m in self.sent if m.out_id == mail.out_id), None)


def make_sender(backend: Any, *providers: Any, email: Any = None, **rules: Any) -> sending.Sender:
    rt = backend.rt("notify")
    return sending.Sender(
        sealer=rt.sealer,
        providers=list(providers) or [FakeProvider()],
        email=email or FakeEmail(),
        rules=Rules(**{"retry_delay": 0.0, **rules}),
        district="410303",
        reports_dir=rt.settings.reports_dir,
    )


def file_sender(backend: Any, **rules: Any) -> sending.Sender:
    out = backend.settings.outbox_dir
    return make_sender(backend, FileSmsChannel(out), email=FileEmailChannel(out), **rules)


@contextmanager
def dispatched() -> Iterator[list[uuid.UUID]]:
    """Collect what would go to the send task, instead of Celery."""
    queue: list[uuid.UUID] = []
    messages.set_dispatch(queue.append)
    try:
        yield queue
    finally:
        messages.set_dispatch(None)


def drain(backend: Any, sender: sending.Sender, queue: list[uuid.UUID]) -> dict[str, int]:
    """Play the send worker: run every dispatched message, retries included (no waiting)."""
    rt = backend.rt("notify")
    outcomes: dict[str, int] = {}
    while queue:
        notification_id = queue.pop(0)
        with rt.uow() as uow:
            outcome = sending.send_notification(notification_id, uow, sender)
        outcomes[outcome.status] = outcomes.get(outcome.status, 0) + 1
        if outcome.retry_in is not None:
            queue.append(notification_id)
    return outcomes


def apply(backend: Any, event: Event, district: str = "410303") -> str:
    """Apply one event to notify through its consumer (inbox and all), without the broker."""
    notify: EventConsumer = consumer(backend, "notify")
    envelope = envelope_for(
        event,
        district=district,
        campaign=backend.settings.campaign,
        producer="test",
        occurred_at=backend.rt("notify").clock.now(),
    )
    return notify.apply(envelope.model_dump_json())


def sweep(backend: Any) -> None:
    from services.notify.consumers import periodic

    periodic(backend.rt("notify"))


def sms_lines(backend: Any) -> list[str]:
    path: Path = backend.settings.outbox_dir / "sms.jsonl"
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


HOUR = timedelta(hours=1)
