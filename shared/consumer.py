"""The event consumer: applies events from a service's queue through its inbox, each once.

:class:`EventConsumer` runs the service's handler table (:class:`~shared.messagebus.EventTable`)
in a unit of work, retries a failing handler with backoff, and dead-letters what cannot be
applied, with the reason; :func:`read_dead_letters` takes those messages back off the
dead-letter queue.

The deliveries that have arrived together (up to ``batch``, with up to ``prefetch`` in
flight) are applied in one transaction: their inbox rows in one statement, their handlers
in order, one commit, then one acknowledgement for them all. A commit per event was what
limited a consumer (each one waits for the database's flush to disk). When anything in a
batch fails, the batch is rolled back and its messages are taken again one at a time, each
in its own transaction with the retries, so a poison message goes to the dead-letter
queue alone and the others are applied.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kombu.connection import Connection
from kombu.message import Message
from kombu.messaging import Producer
from sqlalchemy import insert, select

from shared import logs
from shared.bus import connect, dead_letter_queue, declare, event_queue
from shared.config import Settings
from shared.db import UnitOfWork, inbox_table, is_outage
from shared.events import Envelope, Event, InvalidEvent, parse
from shared.messagebus import EventHandler, RunHandler
from shared.metrics import EVENT_RETRIES, EVENTS_CONSUMED
from shared.pii import error_line

log = logging.getLogger(__name__)

#: How long a batch waits for more deliveries already on their way (seconds): a batch is
#: applied as soon as none arrives within this, or when it is full.
GATHER = 0.01


@dataclass
class ConsumerStats:
    applied: int = 0
    duplicates: int = 0
    ignored: int = 0
    dead: int = 0
    retries: int = 0


class Stopping(Exception):
    """The consumer stops while an event waits for its database: left unacknowledged."""


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
        handlers: Mapping[type[Event], list[EventHandler[Any]]],
        unit_of_work: Callable[[Envelope], UnitOfWork],
        retry_delays: tuple[float, ...] = (0.2, 1.0, 5.0),
        prefetch: int = 200,
        batch: int = 100,
    ) -> None:
        self.service = service
        self.settings = settings
        self.handlers = {cls.TYPE: list(hs) for cls, hs in handlers.items()}
        # consecutive events of these types go to the run handler together (EventTable.in_runs)
        self.run_handler: RunHandler | None = getattr(handlers, "run_handler", None)
        self.run_types: frozenset[str] = getattr(handlers, "run_types", frozenset())
        self.lookups: tuple[tuple[type[Any], str], ...] = getattr(handlers, "lookups", ())
        self.unit_of_work = unit_of_work
        self.retry_delays = retry_delays
        #: half the first wait for a database that is away (doubled each time, to 10 s)
        self.outage_wait = 0.25
        self.prefetch = max(prefetch, batch)
        self.batch = batch
        self.stats = ConsumerStats()
        self._dead_producer: Producer | None = None
        self._stop = threading.Event()
        self._arrived: list[Message] = []
        self._ack_many = False  # AMQP acknowledges a batch with one frame (multiple)

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

    def apply_many(self, events: Sequence[tuple[Envelope, Event]]) -> list[str]:
        """Apply parsed events in order in one unit of work; the outcome of each
        ('applied', 'duplicate' or 'ignored'). If a handler raises, nothing is applied and
        the exception propagates."""
        outcomes = ["ignored"] * len(events)
        todo = [i for i, (envelope, _) in enumerate(events) if self.handlers.get(envelope.type)]
        if not todo:
            return outcomes
        with self.unit_of_work(events[todo[0]][0]) as uow:
            fresh = _first_times(uow, [events[i][0] for i in todo])
            for model, by in self.lookups:  # what the handlers will find, read at once
                uow.preload(model, (getattr(events[i][1], by, None) for i in todo))
            run: list[tuple[Event, Envelope]] = []
            for i in todo:
                envelope, event = events[i]
                if envelope.id not in fresh:
                    outcomes[i] = "duplicate"
                    continue
                fresh.discard(envelope.id)  # a second copy in the same batch is a duplicate
                outcomes[i] = "applied"
                if envelope.type in self.run_types:
                    run.append((event, envelope))
                    continue
                self._apply_run(run, uow)
                # the events a handler emits carry this event's correlation, as alone
                uow.correlation_id = self.unit_of_work(envelope).correlation_id
                with logs.bound(
                    event_id=str(envelope.id),
                    correlation_id=str(envelope.correlation_id or envelope.id),
                ):
                    for handler in self.handlers[envelope.type]:
                        handler(event, envelope, uow)
            self._apply_run(run, uow)
            uow.commit()
        return outcomes

    def _apply_run(self, run: list[tuple[Event, Envelope]], uow: UnitOfWork) -> None:
        """Hand the run gathered so far to the run handler, and empty it."""
        if not run:
            return
        assert self.run_handler is not None
        first = run[0][1]
        uow.correlation_id = self.unit_of_work(first).correlation_id
        with logs.bound(event_id=f"{first.id} (+{len(run) - 1})"):
            self.run_handler(run, uow)
        run.clear()

    def on_messages(self, messages: Sequence[Message]) -> None:
        """Apply ``messages`` in one transaction and acknowledge them after its commit; when
        that fails, apply them one at a time (retries, dead letters) instead."""
        if not messages:
            return
        parsed: list[tuple[Envelope, Event]] = []
        kept: list[Message] = []
        for message in messages:
            try:
                parsed.append(parse(message.body))
            except InvalidEvent as exc:  # dead-lettered alone, as it would be one by one
                with logs.bound(**_trace(message)):
                    self.dead_letter(message, exc.reason)
                message.ack()  # now: delivered again, it would be dead-lettered twice
                EVENTS_CONSUMED.labels(self.service, _event_type(message), "dead_lettered").inc()
            else:
                kept.append(message)
        outcomes: list[str] | None = None
        done: set[int] = set()  # acknowledged already (dead-lettered)
        if len(kept) > 1:
            try:
                outcomes = self.apply_many(parsed)
            except Exception as exc:
                log.warning(
                    "%s: a batch of %d failed (%s); applying its events one at a time",
                    self.service,
                    len(kept),
                    error_line(exc),
                )
        if outcomes is None:  # one at a time: each in its own transaction, with the retries
            for message in kept:
                kind = _event_type(message)
                try:
                    with logs.bound(**_trace(message)):
                        outcome = self._handle(message)
                except Stopping:  # the rest unacknowledged: delivered again (the inbox dedupes)
                    return
                if outcome == "dead_lettered":
                    message.ack()  # now: delivered again, it would be dead-lettered twice
                    done.add(id(message))
                EVENTS_CONSUMED.labels(self.service, kind, outcome).inc()
        else:
            for message, outcome in zip(kept, outcomes, strict=True):
                self._count(outcome)
                EVENTS_CONSUMED.labels(self.service, _event_type(message), outcome).inc()
        self._acknowledge([m for m in kept if id(m) not in done])

    def _acknowledge(self, messages: Sequence[Message]) -> None:
        """Acknowledge what the batch applied (its dead letters were, as they went)."""
        if not messages:
            return
        if self._ack_many:
            # one frame acknowledges every delivery of the channel up to the last one
            messages[-1].ack(multiple=True)
        else:
            for message in messages:
                message.ack()

    def on_message(self, body: Any, message: Message) -> None:
        kind = _event_type(message)
        with logs.bound(**_trace(message)):
            outcome = self._on_message(message)
        EVENTS_CONSUMED.labels(self.service, kind, outcome).inc()

    def _on_message(self, message: Message) -> str:
        try:
            outcome = self._handle(message)
        except Stopping:
            return "requeued"  # not acknowledged: delivered again after the restart
        message.ack()
        return outcome

    def _handle(self, message: Message) -> str:
        """Apply one message in its own transaction, with the retries; dead-letter it when
        it cannot be applied. The caller acknowledges it."""
        raw = message.body
        reason = None
        outcome = "dead_lettered"
        attempt = outage = 0
        while True:
            try:
                outcome = self.apply(raw)
            except InvalidEvent as exc:
                reason = exc.reason
                break
            except Exception as exc:
                if is_outage(exc):
                    # The database restarts or refuses connections: the event is fine, so
                    # wait for the database however long it takes (never dead-letter it for
                    # that); a shutdown meanwhile leaves it unacknowledged, to come again.
                    outage += 1
                    log.warning(
                        "%s: database unavailable (%s); %s waits", self.service,
                        type(getattr(exc, "orig", None) or exc).__name__, message.delivery_tag,
                    )  # fmt: skip
                    if self._stop.wait(min(self.outage_wait * 2 ** min(outage, 8), 10.0)):
                        raise Stopping from None
                    continue
                reason = error_line(exc)
                if attempt >= len(self.retry_delays):
                    break
                self.stats.retries += 1
                EVENT_RETRIES.labels(self.service).inc()
                log.warning("%s: retrying %s after %s", self.service, message.delivery_tag, reason)
                self._stop.wait(self.retry_delays[attempt])  # a shutdown cuts it short
                attempt += 1
            else:
                reason = None
                self._count(outcome)
                break
        if reason is not None:
            self.dead_letter(message, reason)
        return outcome if reason is None else "dead_lettered"

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
                # a replayed message arrives by its queue's name and keeps the original key
                "x-original-routing-key": headers.get("x-original-routing-key")
                or message.delivery_info.get("routing_key", ""),
                "x-dead-service": self.service,
                "x-dead-at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        )
        self._dead_producer.publish(
            message.body,
            exchange=queue.exchange,
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
                self._ack_many = connection.transport.driver_type == "amqp"
                queue = event_queue(self.service, self.settings)
                self._arrived = []
                # on_message: kombu hands over the message undecoded (parse reads the body)
                with connection.Consumer(
                    [queue],
                    on_message=self._arrived.append,
                    accept=None,
                    prefetch_count=self.prefetch,
                ):
                    while not stop.is_set():
                        self._gather(connection)
                        batch = self._arrived[:]
                        self._arrived.clear()
                        self.on_messages(batch)
            except (*connection.connection_errors, *connection.channel_errors) as exc:
                # a channel closed by the broker (a consumer timeout, a restart) as well
                log.warning("%s consumer: broker unavailable: %s", self.service, exc)
                stop.wait(2.0)
            finally:
                connection.release()

    def _gather(self, connection: Connection) -> None:
        """Wait (half a second at most) for a delivery, then take those already on their
        way, up to a batch."""
        try:
            connection.drain_events(timeout=0.5)
        except TimeoutError:
            return
        deadline = time.monotonic() + 0.2  # a steady trickle still makes a batch now and then
        while len(self._arrived) < self.batch and time.monotonic() < deadline:
            try:
                connection.drain_events(timeout=GATHER)
            except TimeoutError:
                return


def _first_times(uow: UnitOfWork, envelopes: Sequence[Envelope]) -> set[uuid.UUID]:
    """Record ``envelopes`` in the inbox in one statement; the ids not applied before.

    Only one consumer applies a queue's events at a time (single active consumer), so the
    ids read here do not change before the insert; if they did, the insert fails, the batch
    rolls back and its events are taken one at a time."""
    inbox = inbox_table(uow.db.metadata)
    ids = {str(e.id) for e in envelopes}
    seen = set(uow.session.scalars(select(inbox.c.event_id).where(inbox.c.event_id.in_(ids))))
    now = uow.now()
    rows: dict[str, dict[str, Any]] = {}
    for e in envelopes:
        key = str(e.id)
        if key not in seen and key not in rows:
            rows[key] = {"event_id": key, "event_type": e.type, "processed_at": now}
    if rows:
        uow.session.execute(insert(inbox), list(rows.values()))
    return {uuid.UUID(key) for key in rows}


def _event_type(message: Message) -> str:
    """The event type from the routing key (``<district>.<type>``): a label bounded by
    the queue's bindings, whatever the body holds."""
    key = str(message.delivery_info.get("routing_key") or "")
    return key.split(".", 1)[-1] if "." in key else "unknown"


def _trace(message: Message) -> dict[str, Any]:
    """The ids every log line about ``message`` carries: the event's id and its
    correlation id (the event's own id when it starts a chain)."""
    properties = getattr(message, "properties", None) or {}
    ids: dict[str, Any] = {"event_id": properties.get("message_id")}
    try:
        data = json.loads(message.body)
    except (TypeError, ValueError):
        return ids
    if isinstance(data, dict):
        ids["event_id"] = data.get("id") or ids["event_id"]
        ids["correlation_id"] = data.get("correlation_id") or data.get("id")
    return ids


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
