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

from collections.abc import Mapping, Sequence
from functools import cache

from kombu.connection import Connection
from kombu.entity import Exchange, Queue, binding

from shared.config import CITY, DISTRICTS, Settings

EVENTS = Exchange("servicemonth.events", type="topic", durable=True)


def direct_exchange(deployment: str) -> Exchange:
    """The deployment's own direct exchange: each of its event and dead-letter queues is
    bound by its own name. Dead letters go through it, and replays back to an event queue;
    not through a shared exchange or the default one, which would let any deployment's
    RabbitMQ user put messages on any queue of the vhost."""
    return Exchange(f"servicemonth.{deployment}.direct", type="direct", durable=True)


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
    # what its projections read (services.reporting.handlers.PROJECTIONS); notifications,
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


def residents_served(district: str, separate: Sequence[str] = ()) -> list[str] | None:
    """The districts whose residents the deployment for ``district`` pairs and tells
    (welcome, reminders); None: every district. A district serves its own; the city serves
    itself and every district that runs no deployment of its own (``separate``)."""
    if district != CITY:
        return [district]
    if not separate:
        return None
    return [CITY, *(d for d in DISTRICTS if d not in separate)]


def binding_keys(service: str, district: str, separate: Sequence[str] = ()) -> list[str]:
    """The keys ``service`` binds in a deployment for ``district``: the events of the
    districts it serves (:func:`residents_served`), so a member is paired and told once, by
    the district she lives in. The city's reporting always counts every district."""
    patterns = SUBSCRIPTIONS[service]
    served = residents_served(district, () if service == "reporting" else separate)
    if served is None:
        return [f"*.{p}" for p in patterns]
    return [f"{d}.{p}" for d in served for p in patterns]


#: Redeliveries of one event (its consume process died holding it each time) before the
#: broker moves it to the dead-letter queue instead of trying it forever.
DELIVERY_LIMIT = 20


def event_queue_name(service: str, deployment: str) -> str:
    return f"servicemonth.{deployment}.{service}.events"


def dead_letter_queue_name(service: str, deployment: str) -> str:
    return f"servicemonth.{deployment}.{service}.dead"


def event_queue_arguments(service: str, deployment: str) -> dict[str, object]:
    """A quorum queue (replicated, survives a node) read by a single active consumer (the
    events apply in order; a second consume process waits as a standby), dead-lettering to
    the service's dead-letter queue. RabbitMQ refuses a declaration whose arguments differ
    from the queue's (PRECONDITION_FAILED): the definitions file
    (``servicemonth deploy rabbitmq-definitions``) declares these same arguments."""
    return {
        "x-queue-type": "quorum",
        "x-single-active-consumer": True,
        "x-dead-letter-exchange": direct_exchange(deployment).name,
        "x-dead-letter-routing-key": dead_letter_queue_name(service, deployment),
        "x-delivery-limit": DELIVERY_LIMIT,
    }


#: The dead-letter queues: replicated too, and read only by operators.
DEAD_QUEUE_ARGUMENTS: Mapping[str, object] = {"x-queue-type": "quorum"}


def event_queue(service: str, settings: Settings) -> Queue:
    keys = binding_keys(service, settings.district, settings.common.separate_districts)
    name = event_queue_name(service, settings.deployment)
    return Queue(
        name,
        bindings=[
            *(binding(EVENTS, routing_key=k) for k in keys),
            binding(direct_exchange(settings.deployment), routing_key=name),
        ],
        durable=True,
        auto_delete=False,
        queue_arguments=event_queue_arguments(service, settings.deployment),
    )


def dead_letter_queue(service: str, settings: Settings) -> Queue:
    name = dead_letter_queue_name(service, settings.deployment)
    return Queue(
        name,
        direct_exchange(settings.deployment),
        routing_key=name,
        durable=True,
        auto_delete=False,
        queue_arguments=dict(DEAD_QUEUE_ARGUMENTS),
    )


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
    direct_exchange(settings.deployment)(channel).declare()
    for queue in deployment_queues(settings):
        queue(channel).declare()
    if settings.district == CITY:
        # districts gone separate since: the every-district keys bound before come off
        for service in SUBSCRIPTIONS:
            queue = event_queue(service, settings)
            bound = {b.routing_key for b in queue.bindings or ()}
            for key in set(binding_keys(service, CITY)) - bound:
                queue(channel).unbind_from(EVENTS, routing_key=key)
