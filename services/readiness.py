"""``/readyz``: whether an HTTP process can do its work now.

Ready when each of its services' databases answers and is migrated to the head its code
expects, the broker answers (RabbitMQ, or the embedded filesystem broker's folder), and,
under ``servicemonth up``, every supervised child runs. Each check runs in a thread of
its own and counts as failed after :data:`TIMEOUT` seconds, so a server that does not
answer (a dropped packet rather than a refused connection) never holds the answer up.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from functools import cache, partial

from services import registry
from shared.bus import connect
from shared.config import Settings
from shared.migrations import current_heads, script_heads

#: Seconds a check may take before it counts as failed.
TIMEOUT = 3.0

Check = Callable[[], str]


@cache
def _expected(service: str) -> frozenset[str]:
    return frozenset(script_heads(service))


def database(service: str) -> str:
    """The database answers and is at the head of ``service``'s migrations."""
    current = current_heads(registry.runtime(service).db)
    expected = _expected(service)
    if current == expected:
        return "ok"
    at = ", ".join(sorted(current)) or "never migrated"
    return f"migrations not at head: at {at}, head {', '.join(sorted(expected))}"


def broker(config: Settings, service: str) -> str:
    """The broker ``service`` uses answers: RabbitMQ accepts a connection and a channel;
    the embedded broker's folder is there and writable."""
    conn = connect(config, service)
    try:
        conn.ensure_connection(max_retries=0)
        conn.channel().close()
        root = config.broker_options(service).get("root")
        if root is not None and not os.access(str(root), os.W_OK):
            return f"error: the broker folder {root} is not writable"
    finally:
        conn.release()
    return "ok"


def checks(services: Iterable[str]) -> dict[str, Check]:
    """What ``/readyz`` checks for ``services``: one database check per service and one
    broker check per broker (``broker``, or ``broker.<service>`` when they differ)."""
    names = list(services)
    found: dict[str, Check] = {f"database.{name}": partial(database, name) for name in names}
    settings = {name: registry.runtime(name).settings for name in names}
    urls = {config.broker_url(name) for name, config in settings.items()}
    for name, config in settings.items():
        key = "broker" if len(urls) == 1 else f"broker.{name}"
        found.setdefault(key, partial(broker, config, name))
    return found


def run(found: Mapping[str, Check], timeout: float = TIMEOUT) -> dict[str, str]:
    """Run ``found`` side by side; each answers ``ok`` or what is wrong, in ``timeout``."""
    results: dict[str, str] = {}
    lock = threading.Lock()

    def one(name: str, check: Check) -> None:
        try:
            outcome = check()
        except Exception as exc:
            outcome = f"error: {type(exc).__name__}"
        with lock:
            results[name] = outcome

    threads = [
        threading.Thread(target=one, args=item, name=f"readyz-{item[0]}", daemon=True)
        for item in found.items()
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0.0))
    with lock:
        return {name: results.get(name, f"no answer within {timeout:.0f} s") for name in found}
