"""The event consumer: applies events from a service's queue through its inbox, each once.

:class:`EventConsumer` runs the service's handler table (:class:`~shared.messagebus.EventTable`)
in a unit of work, retries a failing handler with backoff, and dead-letters what cannot be
applied, with the reason; :func:`read_dead_letters` takes those messages back off the
dead-letter queue.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kombu.connection import Connection
from kombu.message import Message
from kombu.messaging import Producer

from shared import logs
from shared.bus import connect, dead_letter_queue, declare, event_queue
from shared.config import Settings
from shared.db import UnitOfWork
from shared.events import Envelope, Event, InvalidEvent, parse
from shared.messagebus import EventHandler
from shared.metrics import EVENT_RETRIES, EVENTS_CONSUMED
from shared.pii import error_line

log = logging.getLogger(__name__)


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
        handlers: Mapping[type[Event], list[EventHandler[Any]]],
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
        kind = _event_type(message)
        with logs.bound(**_trace(message)):
            outcome = self._on_message(message)
        EVENTS_CONSUMED.labels(self.service, kind, outcome).inc()

    def _on_message(self, message: Message) -> str:
        raw = message.body
        reason = None
        outcome = "dead_lettered"
        for attempt in range(len(self.retry_delays) + 1):
            try:
                outcome = self.apply(raw)
            except InvalidEvent as exc:
                reason = exc.reason
                break
            except Exception as exc:
                reason = error_line(exc)
                if attempt < len(self.retry_delays):
                    self.stats.retries += 1
                    EVENT_RETRIES.labels(self.service).inc()
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
