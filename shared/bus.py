"""The event bus: one topic exchange, a durable queue per service per deployment.

Exchanges, queues and bindings are declared here once and by every process at start, so a
publisher never sends into a void. Routing keys are ``<district>.<event-type>``; a district
deployment binds ``<district>.<pattern>``, the city deployment binds every district.

This module holds the topology and the connection only. Publishing goes through the
transactional outbox (:class:`shared.relay.OutboxRelay`); consuming goes through the inbox
(:class:`shared.consumer.EventConsumer`), which sends a message that cannot be applied after
the retries, or that fails its schema, to the service's dead-letter queue with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

from kombu.connection import Connection
from kombu.entity import Exchange, Queue, binding

from shared.config import CITY, Settings

EVENTS = Exchange("servicemonth.events", type="topic", durable=True)
DEAD = Exchange("servicemonth.dead", type="direct", durable=True)

#: Which event types each service listens to (topic patterns after the district word).
SUBSCRIPTIONS: Mapping[str, tuple[str, ...]] = {
    "registration": (),
    "pairing": ("member.*", "registration.*", "directory.*", "auth.revoked"),
    "notify": (
        "auth.*",
        "member.*",
        "directory.*",
        "registration.*",
        "pairing.*",
        "wish.*",
        "activity.*",
        "team.*",
        "report.generated",
        "staff.*",  # the staff contacts notify sends to (registration's staff accounts)
    ),
    # what its projections read (services.reporting.consumers.PROJECTIONS); notifications,
    # team requests and reports go past
    "reporting": (
        "auth.revoked",
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


def _topic_match(words: list[str], pattern: list[str]) -> bool:
    """AMQP topic matching: ``*`` is one word, ``#`` zero or more."""
    if not pattern:
        return not words
    if pattern[0] == "#":
        return any(_topic_match(words[i:], pattern[1:]) for i in range(len(words) + 1))
    return bool(words) and pattern[0] in ("*", words[0]) and _topic_match(words[1:], pattern[1:])


@cache
def listened_to(event_type: str) -> bool:
    """Whether a service of a deployment subscribes to ``event_type``. Those events must
    reach a queue (the relay publishes them ``mandatory``); the others (notify's
    ``notification.*``) are for whoever binds them later, and no queue is no error."""
    words = event_type.split(".")
    return any(
        _topic_match(words, pattern.split("."))
        for patterns in SUBSCRIPTIONS.values()
        for pattern in patterns
    )


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
