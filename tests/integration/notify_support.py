"""What notify's integration tests share: fake SMS providers (the only fake), a send loop
that plays the Celery worker's part, and shortcuts for applying events to notify."""

from __future__ import annotations

import heapq
import random
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from services.notify import bootstrap, sending
from services.notify.channels.base import (
    Limit,
    OutgoingEmail,
    OutgoingSms,
    PermanentProviderError,
    TransientProviderError,
)
from services.notify.channels.files import FileEmailChannel, FileSmsChannel
from services.notify.report_files import ReportMissing
from services.notify.rules import Rules
from shared.clock import Clock, SimulatedClock
from shared.consumer import EventConsumer
from shared.events import Event, SealedContact, StaffAccountSaved, envelope_for
from shared.pii import Sealer, mask_name, mask_phone
from tests.support import consumer


@dataclass
class FakeProvider:
    """An SMS provider that accepts (and remembers) every SMS, or fails as told.

    ``timeouts`` is the share of calls that time out (seeded); a timed-out call may still
    have been accepted (``accept_on_timeout``), as with a real gateway. Like Tencent's
    receipts, ``find`` lists a send only ``lag`` after it was accepted (on ``clock``), and
    fails (a transient error) on ``find_errors`` of its calls; ``settle_after`` is what the
    provider promises the sender. ``gate``, when set, makes ``send`` wait until it is set
    (``entered`` tells the test the call has begun).
    """

    name: str = "fake"
    limits: tuple[Limit, ...] = ()
    timeouts: float = 0.0
    accept_on_timeout: bool = False
    permanent: bool = False
    seed: int = 0
    lag: timedelta = timedelta(0)
    settle_after: timedelta = timedelta(0)
    find_errors: float = 0.0
    clock: Clock | None = None
    gate: threading.Event | None = None
    entered: threading.Event = field(default_factory=threading.Event)
    accepted: list[OutgoingSms] = field(default_factory=list)
    accepted_at: dict[str, datetime] = field(default_factory=dict)
    calls: int = 0
    lookups: int = 0

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._find_rng = random.Random(self.seed + 1)

    def _now(self) -> datetime:
        return self.clock.now() if self.clock is not None else datetime.min

    def _accept(self, sms: OutgoingSms) -> None:
        self.accepted.append(sms)
        self.accepted_at[sms.out_id] = self._now()

    def send(self, sms: OutgoingSms) -> str:
        self.calls += 1
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(30), "the test never opened the gate"
        if self.permanent:
            raise PermanentProviderError("isv.MOBILE_NUMBER_ILLEGAL", provider=self.name)
        if self.timeouts and self._rng.random() < self.timeouts:
            if self.accept_on_timeout:
                self._accept(sms)
            raise TransientProviderError("timeout", "read timed out", provider=self.name)
        self._accept(sms)
        return f"{self.name}:{sms.out_id}"

    def find(self, sms: OutgoingSms, since: datetime) -> str | None:
        self.lookups += 1
        if self.find_errors and self._find_rng.random() < self.find_errors:
            raise TransientProviderError("InternalError", "lookup failed", provider=self.name)
        at = self.accepted_at.get(sms.out_id)
        if at is None or (self.clock is not None and self._now() < at + self.lag):
            return None  # not accepted, or not listed yet
        return f"{self.name}:{sms.out_id}"


@dataclass
class FolderReportFiles:
    """Report files read from a folder, as the tests of the e-mail itself lay them out
    (how they travel from reporting is tests/integration/test_report_files.py's)."""

    root: Path

    def fetch(self, path: str) -> bytes:
        file = self.root / path
        if not file.is_file():
            raise ReportMissing(f"report file {path} is not in the reports folder")
        return file.read_bytes()


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
        reports=FolderReportFiles(rt.settings.reports_dir),
    )


def file_sender(backend: Any, **rules: Any) -> sending.Sender:
    out = backend.settings.outbox_dir
    return make_sender(backend, FileSmsChannel(out), email=FileEmailChannel(out), **rules)


@contextmanager
def dispatched() -> Iterator[list[uuid.UUID]]:
    """Collect what would go to the send task, instead of Celery."""
    queue: list[uuid.UUID] = []
    with bootstrap.replaced(dispatch=queue.append):
        yield queue


def drain(
    backend: Any,
    sender: sending.Sender,
    queue: list[uuid.UUID],
    clock: SimulatedClock | None = None,
) -> dict[str, int]:
    """Play the send worker: run every dispatched message, retries included. A retry asked
    for at once runs at once; one asked for later runs — with ``clock`` — once the queue is
    empty, the simulated clock moved on to when it is due (as Celery's countdown would),
    and without ``clock`` is left for the test to run."""
    rt = backend.rt("notify")
    outcomes: dict[str, int] = {}
    later: list[tuple[datetime, int, uuid.UUID]] = []
    while queue or later:
        if not queue:
            when, _, notification_id = heapq.heappop(later)
            assert clock is not None
            clock.set(max(when, clock.now()))
            queue.append(notification_id)
        notification_id = queue.pop(0)
        with rt.uow() as uow:
            outcome = sending.send_notification(notification_id, uow, sender)
        outcomes[outcome.status] = outcomes.get(outcome.status, 0) + 1
        if outcome.retry_in is None:
            continue
        if outcome.retry_in <= 0:
            queue.append(notification_id)
        elif clock is not None:
            when = clock.now() + timedelta(seconds=outcome.retry_in)
            heapq.heappush(later, (when, len(later) + sum(outcomes.values()), notification_id))
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


def staff_saved(
    sealer: Sealer,
    role: str,
    scope: str,
    name: str,
    phone: str | None,
    email: str | None = None,
    district: str | None = "410303",
) -> StaffAccountSaved:
    """A new staff account as registration publishes it (``staff.saved``): notify's only
    way to learn of community staff, unit organisers and leaders."""
    return StaffAccountSaved(
        account_id=uuid.uuid4(),
        role=role,
        scope=scope,
        district=district,
        contact=SealedContact(
            sealed=SealedContact.seal(sealer, name, phone, email),
            phone_masked=mask_phone(phone) if phone else None,
        ),
        name_masked=mask_name(name),
    )


def add_staff(backend: Any, role: str, scope: str, name: str, phone: str | None) -> uuid.UUID:
    """A staff contact in notify, through ``staff.saved`` and notify's consumer."""
    event = staff_saved(backend.rt("notify").sealer, role, scope, name, phone)
    apply(backend, event)
    return event.account_id


def sweep(backend: Any) -> None:
    from services.notify.consumers import periodic

    periodic(backend.rt("notify"))


def sms_lines(backend: Any) -> list[str]:
    path: Path = backend.settings.outbox_dir / "sms.jsonl"
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


HOUR = timedelta(hours=1)
