"""The outbox relay: publishes committed outbox rows to the bus, with publisher confirms.

Handlers write events into their service's outbox in the same transaction as their effects
(:class:`shared.db.UnitOfWork`); :class:`OutboxRelay` is the only thing that sends them, and
only after commit, so nothing is published that did not happen.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kombu.connection import Connection
from kombu.messaging import Producer
from sqlalchemy import select, update

from shared.bus import EVENTS, connect, declare, listened_to
from shared.config import Settings
from shared.db import Database, outbox_table
from shared.metrics import EVENTS_PUBLISHED

log = logging.getLogger(__name__)


@dataclass
class RelayStats:
    published: int = 0
    failures: int = 0
    last_error: str | None = None


class OutboxRelay:
    """Publishes committed outbox rows with publisher confirms; marks them sent after.

    A row is marked sent only once the broker confirmed it and, for an event some service
    subscribes to (:func:`shared.bus.listened_to`), routed it to at least one queue
    (``mandatory``). If the relay dies between publishing and marking, the row is published
    again: consumers' inboxes absorb the duplicate.
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
        """Unsent rows (position, event id, routing key, body), oldest first.

        Read without the write lock (on SQLite a session takes it when it begins): the relay
        asks every 0.1 s, and would keep the consumer beside it, and the API, waiting."""
        outbox = outbox_table(self.db.metadata)
        with self.db.reader() as session:
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
                mandatory=listened_to(key.split(".", 1)[1]),
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
        keys = {position: key for position, _, key, _ in rows}
        for position in sent:
            EVENTS_PUBLISHED.labels(self.service, keys[position].split(".", 1)[-1]).inc()
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
