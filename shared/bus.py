"""The event bus: one topic exchange, a durable queue per service per deployment.

Exchanges, queues and bindings are declared here once and by every process at start, so a
publisher never sends into a void. Routing keys are ``<district>.<event-type>``; a district
deployment binds ``<district>.<pattern>``, the city deployment binds every district.

Publishing goes through the transactional outbox (:class:`OutboxRelay`); consuming goes
through the inbox (:class:`EventConsumer`). A message that cannot be applied after the
retries, or that fails its schema, goes to the service's dead-letter queue with the reason.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kombu.connection import Connection
from kombu.entity import Exchange, Queue, binding
from kombu.message import Message
from kombu.messaging import Producer
from sqlalchemy import select, update

from shared.config import CITY, Settings
from shared.db import Database, UnitOfWork, outbox_table
from shared.events import Envelope, Event, InvalidEvent, parse

log = logging.getLogger(__name__)

EVENTS = Exchange("servicemonth.events", type="topic", durable=True)
DEAD = Exchange("servicemonth.dead", type="direct", durable=True)

#: Which event types each service listens to (topic patterns after the district word).
SUBSCRIPTIONS: Mapping[str, tuple[str, ...]] = {
    "registration": (),
    "pairing": ("member.*", "registration.*", "directory.*"),
    "notify": (
        "member.*",
        "directory.*",
        "registration.*",
        "pairing.*",
        "wish.*",
        "activity.*",
        "team.*",
        "report.generated",
    ),
    # what its projections read (services.reporting.consumers.PROJECTIONS); notifications,
    # team requests and reports go past
    "reporting": (
        "member.*",
        "registration.*",
        "directory.*",
        "pairing.*",
        "wish.*",
        "activity.*",
    ),
}


def routing_key(district: str, event_type: str) -> str:
    return f"{district}.{event_type}"


def binding_keys(service: str, district: str) -> list[str]:
    """The keys ``service`` binds in a deployment for ``district`` (410300: every district)."""
    if district == CITY:
        return [f"*.{p}" for p in SUBSCRIPTIONS[service]]
    return [f"{district}.{p}" for p in SUBSCRIPTIONS[service]]


def event_queue(service: str, settings: Settings) -> Queue:
    keys = binding_keys(service, settings.district)
    return Queue(
        f"servicemonth.{settings.deployment}.{service}.events",
        bindings=[binding(EVENTS, routing_key=k) for k in keys],
        durable=True,
        auto_delete=False,
    )


def dead_letter_queue(service: str, settings: Settings) -> Queue:
    name = f"servicemonth.{settings.deployment}.{service}.dead"
    return Queue(name, DEAD, routing_key=name, durable=True, auto_delete=False)


def deployment_queues(settings: Settings) -> list[Queue]:
    """Every queue of the deployment: all services' event queues and dead-letter queues."""
    queues = []
    for service, patterns in SUBSCRIPTIONS.items():
        if patterns:
            queues.append(event_queue(service, settings))
        queues.append(dead_letter_queue(service, settings))
    return queues


def connect(settings: Settings, service: str | None = None) -> Connection:
    """A Kombu connection to the deployment's broker (not yet connected)."""
    import shared.fstransport  # noqa: F401 - registers the sfs:// transport

    return Connection(
        settings.broker_url(service),
        transport_options=settings.broker_options(service),
        heartbeat=0,
        connect_timeout=5,
    )


def declare(conn: Connection, settings: Settings) -> None:
    """Declare the exchanges, queues and bindings of the deployment (idempotent)."""
    channel = conn.default_channel
    EVENTS(channel).declare()
    DEAD(channel).declare()
    for queue in deployment_queues(settings):
        queue(channel).declare()


# --- publishing: the outbox relay ----------------------------------------------------------


@dataclass
class RelayStats:
    published: int = 0
    failures: int = 0
    last_error: str | None = None


class OutboxRelay:
    """Publishes committed outbox rows with publisher confirms; marks them sent after.

    A row is marked sent only once the broker confirmed it and it was routed to at least
    one queue (``mandatory``). If the relay dies between publishing and marking, the row is
    published again: consumers' inboxes absorb the duplicate.
    """

    def __init__(self, db: Database, settings: Settings, service: str, batch: int = 200) -> None:
        self.db = db
        self.settings = settings
        self.service = service
        self.batch = batch
        self.stats = RelayStats()
        self._conn: Connection | None = None
        self._producer: Producer | None = None
        self._returned: set[str] = set()

    def _ensure_producer(self) -> Producer:
        if self._producer is None:
            conn = connect(self.settings, self.service)
            conn.ensure_connection(max_retries=1)
            declare(conn, self.settings)
            self._conn = conn
            self._producer = Producer(conn.channel(), exchange=EVENTS, on_return=self._on_return)
        return self._producer

    def _on_return(self, exc: Exception, exchange: str, key: str, message: Any) -> None:
        message_id = message.properties.get("message_id") if message is not None else None
        log.error("broker returned unroutable event %s (%s): %s", message_id, key, exc)
        if message_id:
            self._returned.add(message_id)

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # the connection may be gone already
                self._conn.release()
        self._conn = None
        self._producer = None

    def pending(self) -> list[tuple[int, str, str, str]]:
        """Unsent rows (position, event id, routing key, body), oldest first."""
        outbox = outbox_table(self.db.metadata)
        with self.db.session() as session:
            rows = session.execute(
                select(outbox.c.position, outbox.c.event_id, outbox.c.routing_key, outbox.c.body)
                .where(outbox.c.sent_at.is_(None))
                # rows the broker returned sink behind new ones instead of blocking them
                .order_by(outbox.c.attempts, outbox.c.position)
                .limit(self.batch)
            ).all()
        return [(r.position, r.event_id, r.routing_key, r.body) for r in rows]

    def publish(self, rows: Iterable[tuple[int, str, str, str]]) -> list[int]:
        """Publish ``rows``; return the positions the broker confirmed and routed.

        Rows the broker returned as unroutable stay unsent with the reason recorded.
        """
        producer = self._ensure_producer()
        confirmed: list[int] = []
        returned: list[int] = []
        for position, event_id, key, body in rows:
            self._returned.discard(event_id)
            producer.publish(
                body,
                routing_key=key,
                exchange=EVENTS,
                content_type="application/json",
                content_encoding="utf-8",
                message_id=event_id,
                delivery_mode=2,
                mandatory=True,
                retry=False,
            )
            (returned if event_id in self._returned else confirmed).append(position)
        if returned:
            outbox = outbox_table(self.db.metadata)
            with self.db.session() as session:
                session.execute(
                    update(outbox)
                    .where(outbox.c.position.in_(returned))
                    .values(attempts=outbox.c.attempts + 1, last_error="unroutable: no queue bound")
                )
                session.commit()
        return confirmed

    def mark_sent(self, positions: list[int]) -> None:
        if not positions:
            return
        outbox = outbox_table(self.db.metadata)
        with self.db.session() as session:
            session.execute(
                update(outbox)
                .where(outbox.c.position.in_(positions))
                .values(sent_at=datetime.now(UTC), attempts=outbox.c.attempts + 1)
            )
            session.commit()

    def run_once(self) -> int:
        """Publish one batch; return how many rows were sent."""
        rows = self.pending()
        if not rows:
            return 0
        try:
            sent = self.publish(rows)
        except Exception as exc:
            self.close()
            self.stats.failures += 1
            self.stats.last_error = f"{type(exc).__name__}: {exc}"
            raise
        self.mark_sent(sent)
        self.stats.published += len(sent)
        return len(sent)

    def run(self, stop: threading.Event, interval: float = 0.1, max_backoff: float = 10.0) -> None:
        """Relay until ``stop`` is set; back off while the broker is away."""
        backoff = interval
        while not stop.is_set():
            try:
                sent = self.run_once()
                backoff = interval
            except Exception as exc:
                log.warning("outbox relay (%s): broker unavailable: %s", self.service, exc)
                sent = 0
                self.close()
                backoff = min(backoff * 2, max_backoff)
                stop.wait(backoff)
                continue
            if sent < self.batch:
                stop.wait(interval)
        self.close()


# --- consuming: the inbox -------------------------------------------------------------------

Handler = Callable[[Any, Envelope, UnitOfWork], None]


@dataclass
class ConsumerStats:
    applied: int = 0
    duplicates: int = 0
    ignored: int = 0
    dead: int = 0
    retries: int = 0


class EventConsumer:
    """Applies events from a service's queue, each once, in a unit of work.

    The event id goes into the inbox in the same transaction as the handlers' effects; the
    message is acknowledged only after commit. A failing handler is retried with backoff;
    when retries are exhausted, or the message is not a valid event, it goes to the
    dead-letter queue with the reason and the queue moves on.
    """

    def __init__(
        self,
        service: str,
        settings: Settings,
        handlers: Mapping[type[Event], list[Handler]],
        unit_of_work: Callable[[Envelope], UnitOfWork],
        retry_delays: tuple[float, ...] = (0.2, 1.0, 5.0),
        prefetch: int = 16,
    ) -> None:
        self.service = service
        self.settings = settings
        self.handlers = {cls.TYPE: list(hs) for cls, hs in handlers.items()}
        self.unit_of_work = unit_of_work
        self.retry_delays = retry_delays
        self.prefetch = prefetch
        self.stats = ConsumerStats()
        self._dead_producer: Producer | None = None
        self._stop = threading.Event()

    def apply(self, body: bytes | str) -> str:
        """Apply one message body; return 'applied', 'duplicate', 'ignored' or raise."""
        envelope, event = parse(body)
        handlers = self.handlers.get(envelope.type)
        if not handlers:
            return "ignored"
        with self.unit_of_work(envelope) as uow:
            if not uow.first_time(envelope):
                return "duplicate"
            for handler in handlers:
                handler(event, envelope, uow)
            uow.commit()
        return "applied"

    def on_message(self, body: Any, message: Message) -> None:
        raw = message.body
        reason = None
        for attempt in range(len(self.retry_delays) + 1):
            try:
                outcome = self.apply(raw)
            except InvalidEvent as exc:
                reason = exc.reason
                break
            except Exception as exc:
                # First line only: SQLAlchemy appends the statement and its parameters.
                reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                if attempt < len(self.retry_delays):
                    self.stats.retries += 1
                    log.warning(
                        "%s: retrying %s after %s", self.service, message.delivery_tag, reason
                    )
                    self._stop.wait(self.retry_delays[attempt])  # a shutdown cuts it short
                continue
            else:
                reason = None
                self._count(outcome)
                break
        if reason is not None:
            self.dead_letter(message, reason)
        message.ack()

    def _count(self, outcome: str) -> None:
        if outcome == "applied":
            self.stats.applied += 1
        elif outcome == "duplicate":
            self.stats.duplicates += 1
        else:
            self.stats.ignored += 1

    def dead_letter(self, message: Message, reason: str) -> None:
        log.error("%s: dead-lettering a message: %s", self.service, reason)
        assert self._dead_producer is not None
        queue = dead_letter_queue(self.service, self.settings)
        headers = dict(message.headers or {})
        headers.update(
            {
                "x-dead-reason": reason[:2000],
                "x-original-routing-key": message.delivery_info.get("routing_key", ""),
                "x-dead-service": self.service,
            }
        )
        self._dead_producer.publish(
            message.body,
            exchange=DEAD,
            routing_key=queue.routing_key,
            content_type=message.content_type or "application/octet-stream",
            content_encoding=message.content_encoding or "binary",
            headers=headers,
            delivery_mode=2,
            retry=True,
        )
        self.stats.dead += 1

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set, reconnecting when the broker goes away."""
        self._stop = stop
        while not stop.is_set():
            connection = connect(self.settings, self.service)
            try:
                connection.ensure_connection(max_retries=3)
                declare(connection, self.settings)
                self._dead_producer = Producer(connection.channel())
                queue = event_queue(self.service, self.settings)
                with connection.Consumer(
                    [queue], callbacks=[self.on_message], accept=None, prefetch_count=self.prefetch
                ):
                    while not stop.is_set():
                        try:
                            connection.drain_events(timeout=0.5)
                        except TimeoutError:
                            continue
            except connection.connection_errors as exc:
                log.warning("%s consumer: broker unavailable: %s", self.service, exc)
                stop.wait(2.0)
            finally:
                connection.release()


def read_dead_letters(conn: Connection, service: str, settings: Settings) -> list[dict[str, Any]]:
    """Take every message off ``service``'s dead-letter queue (for operators and tests)."""
    queue = dead_letter_queue(service, settings)
    found = []
    simple = conn.SimpleQueue(queue, no_ack=False)
    try:
        while True:
            try:
                msg = simple.get(block=True, timeout=0.5)
            except simple.Empty:
                break
            found.append({"body": msg.body, "headers": dict(msg.headers or {})})
            msg.ack()
    finally:
        simple.close()
    return found
