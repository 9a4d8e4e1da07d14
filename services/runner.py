"""Long-running loops of a service: its event consumer, outbox relay and periodic sweeps."""

from __future__ import annotations

import logging
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
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("received signal %s, stopping", signum)
        stop.set()

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
