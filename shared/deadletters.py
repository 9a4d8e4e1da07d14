"""Dead letters for operators: look at them, replay them, drop them.

A service's consumer (:class:`shared.consumer.EventConsumer`) puts what it cannot apply on
the service's dead-letter queue, the reason in ``x-dead-reason``. Here an operator can

* :func:`peek` at them without taking them off: each is fetched unacknowledged and handed
  back, so the queue keeps them, in their order;
* :func:`replay` them once the cause is fixed: each goes back on the service's own event
  queue (through the deployment's direct exchange, by the queue's name, so no other
  service receives it again) and leaves the dead-letter queue only after the broker
  confirmed the republish. A crash in between leaves it in both places, which is
  harmless: the consumer's inbox applies an event id once, however often it arrives;
* :func:`drop` them.

What is shown never holds personal data: sealed values are replaced (the fields known to
hold one, and any string shaped like one), and every other string has ID numbers, mobiles
and e-mail addresses masked (:func:`shared.pii.redact`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from kombu.connection import Connection
from kombu.entity import Queue
from kombu.message import Message
from kombu.messaging import Producer

from shared.bus import dead_letter_queue, direct_exchange, event_queue
from shared.config import Settings
from shared.pii import redact

#: What replaces a sealed value in what is shown.
SEALED = "[sealed]"
#: Payload fields that hold a sealed value, besides any field named ``sealed``.
SEALED_FIELDS: dict[str, frozenset[str]] = {"auth.code_requested": frozenset({"code"})}
#: A sealed value's shape (:class:`shared.pii.Sealer`): an optional key version, then
#: urlsafe base64 of nonce, ciphertext and tag, at least 29 bytes (40 characters). Event
#: ids (36 characters, UUIDs) are shorter.
SEALED_SHAPE = re.compile(r"(v[0-9]{1,6}\.)?[A-Za-z0-9_-]{38,}={0,2}")
#: How much of a body that is not JSON is shown.
RAW_SHOWN = 500


@dataclass(frozen=True)
class DeadLetter:
    """One message on a dead-letter queue, as an operator may see it.

    ``id`` is the event's id, or ``body-<hash>`` for a body that carries none (one that is
    not an event at all).
    """

    id: str
    event_type: str
    reason: str
    dead_at: str | None
    occurred_at: str | None
    body: Any

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "event_type": self.event_type,
            "reason": self.reason,
            "dead_at": self.dead_at,
            "occurred_at": self.occurred_at,
            "body": self.body,
        }


class NoEventQueue(LookupError):
    """The service's event queue does not exist (its consumer never started): nothing
    was replayed."""


class UnknownDeadLetter(LookupError):
    """Some ids asked for are not on the dead-letter queue (nothing was done)."""

    def __init__(self, ids: list[str]) -> None:
        super().__init__(", ".join(ids))
        self.ids = ids


def describe(body: bytes | str, headers: dict[str, Any]) -> DeadLetter:
    """What an operator sees of a dead letter: its id, type, reason, times, masked body."""
    raw = body if isinstance(body, bytes) else body.encode()
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = None
    envelope = parsed if isinstance(parsed, dict) else {}
    event_id = envelope.get("id")
    event_type = envelope.get("type")
    if not isinstance(event_type, str):
        event_type = "?"
    if isinstance(parsed, dict | list):
        shown = mask(parsed, SEALED_FIELDS.get(event_type, frozenset()))
    else:
        shown = redact(raw[:RAW_SHOWN].decode("utf-8", errors="replace"))
    occurred = envelope.get("occurred_at")
    dead_at = headers.get("x-dead-at")
    return DeadLetter(
        id=str(event_id) if isinstance(event_id, str) and event_id else body_id(raw),
        event_type=redact(event_type),
        reason=redact(str(headers.get("x-dead-reason") or _broker_reason(headers))),
        dead_at=str(dead_at) if dead_at else None,
        occurred_at=str(occurred) if isinstance(occurred, str) else None,
        body=shown,
    )


def _broker_reason(headers: dict[str, Any]) -> str:
    """The reason RabbitMQ gives when it dead-lettered the message itself (``x-death``:
    rejected, expired, delivery_limit), for a queue set up to dead-letter."""
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        return f"broker: {deaths[0].get('reason', '?')} in {deaths[0].get('queue', '?')}"
    return ""


def body_id(raw: bytes) -> str:
    return f"body-{hashlib.sha256(raw).hexdigest()[:12]}"


def mask(value: Any, sealed: frozenset[str] = frozenset()) -> Any:
    """``value`` (decoded JSON) with sealed fields replaced and personal data masked."""
    if isinstance(value, dict):
        return {
            redact(str(k)): SEALED
            if (k == "sealed" or k in sealed) and isinstance(v, str)
            else mask(v, sealed)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [mask(v, sealed) for v in value]
    if isinstance(value, str):
        return SEALED if len(value) >= 40 and SEALED_SHAPE.fullmatch(value) else redact(value)
    return value


@dataclass
class Held:
    """A dead letter fetched unacknowledged: what it is, and the message to settle."""

    letter: DeadLetter
    message: Message


@contextlib.contextmanager
def holding(conn: Connection, service: str, settings: Settings) -> Iterator[list[Held]]:
    """Every message on ``service``'s dead-letter queue, fetched unacknowledged, oldest
    first. What the block did not acknowledge goes back to the queue when it ends (also
    if the process dies: the broker hands back what a lost connection held)."""
    dead = dead_letter_queue(service, settings)
    if depth(conn, dead) is None:
        yield []  # never declared: nothing ever died there
        return
    channel = conn.channel()
    queue = dead(channel)
    held: list[Held] = []
    try:
        while (message := queue.get(no_ack=False, accept=None)) is not None:
            held.append(Held(describe(message.body, dict(message.headers or {})), message))
        yield held
    finally:
        with contextlib.suppress(Exception):  # a lost connection hands them back anyway
            for item in held:
                if not item.message.acknowledged:
                    item.message.requeue()
        with contextlib.suppress(Exception):
            channel.close()


def peek(conn: Connection, service: str, settings: Settings) -> list[DeadLetter]:
    """Every dead letter of ``service``, oldest first; the queue keeps them all."""
    with holding(conn, service, settings) as held:
        return [h.letter for h in held]


def _chosen(held: list[Held], ids: set[str] | None) -> list[Held]:
    """The held letters with ``ids`` (None: all); every id must be there."""
    if ids is None:
        return list(held)
    missing = sorted(ids - {h.letter.id for h in held})
    if missing:
        raise UnknownDeadLetter(missing)
    return [h for h in held if h.letter.id in ids]


def replay(
    conn: Connection,
    service: str,
    settings: Settings,
    ids: set[str] | None,
    on_replayed: Callable[[DeadLetter], None] | None = None,
) -> list[DeadLetter]:
    """Put the dead letters with ``ids`` (None: all) back on ``service``'s event queue,
    oldest first; each leaves the dead-letter queue once its republish is confirmed.

    Raises :class:`UnknownDeadLetter` or :class:`NoEventQueue`, doing nothing, when an id
    is not there or the event queue does not exist.
    """
    target = event_queue(service, settings)
    done: list[DeadLetter] = []
    with holding(conn, service, settings) as held:
        chosen = _chosen(held, ids)
        if not chosen:
            return done
        if depth(conn, target) is None:  # the consumer declares it; none: do nothing
            raise NoEventQueue(target.name)
        channel = conn.channel()
        try:
            returned: list[str] = []
            producer = Producer(channel, on_return=lambda *args: returned.append(target.name))
            for item in chosen:
                _republish(producer, target, item.message, settings)
                if returned:  # both brokers report a return before publish returns
                    raise RuntimeError(f"the broker could not deliver to {target.name}")
                item.message.ack()  # only now: the broker has it on the event queue
                done.append(item.letter)
                if on_replayed is not None:
                    on_replayed(item.letter)
        finally:
            with contextlib.suppress(Exception):
                channel.close()
    return done


def _republish(producer: Producer, target: Queue, message: Message, settings: Settings) -> None:
    headers = {k: v for k, v in dict(message.headers or {}).items() if not k.startswith("x-dead-")}
    properties = message.properties or {}
    extra = {"message_id": properties["message_id"]} if properties.get("message_id") else {}
    # The deployment's direct exchange delivers to the queue named by the key: this
    # service alone. With the production broker's publisher confirms, publish returns once
    # confirmed.
    producer.publish(
        message.body,
        exchange=direct_exchange(settings.deployment),
        routing_key=target.name,
        content_type=message.content_type or "application/json",
        content_encoding=message.content_encoding or "utf-8",
        headers=headers,
        delivery_mode=2,
        mandatory=True,
        retry=False,
        **extra,
    )


def drop(conn: Connection, service: str, settings: Settings, ids: set[str]) -> list[DeadLetter]:
    """Remove the dead letters with ``ids`` from ``service``'s dead-letter queue.

    Raises :class:`UnknownDeadLetter`, doing nothing, when an id is not there.
    """
    with holding(conn, service, settings) as held:
        chosen = _chosen(held, ids)
        for item in chosen:
            item.message.ack()
        return [h.letter for h in chosen]


def depth(conn: Connection, queue: Queue) -> int | None:
    """How many messages wait on ``queue`` (ready, not held by a consumer), read passively:
    None when the queue does not exist."""
    channel = conn.channel()
    try:
        declared = queue(channel).queue_declare(passive=True)
    except conn.channel_errors:
        return None
    finally:
        with contextlib.suppress(Exception):
            channel.close()
    return int(declared.message_count) if declared is not None else None
