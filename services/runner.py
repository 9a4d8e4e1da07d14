"""Long-running loops of a service: its event consumer, outbox relay and periodic sweeps."""

from __future__ import annotations

import logging
import queue
import signal
import threading
from types import FrameType

from services import registry
from services.supervisor import Heartbeat, heartbeat_path
from shared.bus import SUBSCRIPTIONS
from shared.consumer import EventConsumer
from shared.relay import OutboxRelay

log = logging.getLogger(__name__)


def stop_on_signals() -> threading.Event:
    """An event set once SIGTERM or SIGINT arrives.

    The handler only puts the signal on a SimpleQueue (reentrant: safe in a handler); a
    thread sets the event. Setting it in the handler deadlocked: a signal that lands while
    the main thread holds the event's lock (in ``wait`` or an earlier ``set``) waits for that
    lock forever, and the process outlived ``up`` and the demo, ignoring every SIGTERM."""
    stop = threading.Event()
    arrived: queue.SimpleQueue[int] = queue.SimpleQueue()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        arrived.put(signum)

    def _relay() -> None:
        log.info("received signal %s, stopping", arrived.get())
        stop.set()

    threading.Thread(target=_relay, name="signals", daemon=True).start()
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    return stop


def consume(service: str, stop: threading.Event, periodic_every: float = 10.0) -> None:
    """Relay ``service``'s outbox and apply the events it subscribes to, until ``stop``."""
    rt = registry.runtime(service)
    relay = OutboxRelay(rt.db, rt.settings, service)
    threads = [threading.Thread(target=relay.run, args=(stop,), name=f"{service}-relay")]
    if SUBSCRIPTIONS[service]:
        consumer = EventConsumer(
            service,
            rt.settings,
            registry.handlers(service, rt),
            lambda env: rt.uow(env.correlation_id or env.id),
        )
        threads.append(
            threading.Thread(target=consumer.run, args=(stop,), name=f"{service}-consumer")
        )
    periodic = registry.periodic(service)
    for thread in threads:
        thread.start()
    # The heartbeat (`servicemonth alive consume SERVICE`) stops while a loop has died.
    heartbeat = Heartbeat(heartbeat_path(rt.settings.home, "consume", service))
    beats = threading.Thread(
        target=heartbeat.keep,
        args=(stop, lambda: all(t.is_alive() for t in threads)),
        name=f"{service}-heartbeat",
        daemon=True,
    )
    beats.start()
    while not stop.wait(periodic_every):
        if periodic is not None:
            try:
                periodic(rt)
            except Exception:
                log.exception("%s: periodic sweep failed", service)
    for thread in [*threads, beats]:
        thread.join(timeout=10)
