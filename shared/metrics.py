"""Prometheus metrics: what the processes count, and the state figures read at scrape time.

Counters live in the process that counts (the relay and consumer in ``consume``, request
latency in ``serve``). A process started by the CLI writes them under
``$SERVICEMONTH_HOME/metrics`` (prometheus-client's multiprocess mode), so every HTTP
process of the deployment answers ``/metrics`` with the counters of the consumers and
workers beside it, whether they are ``servicemonth up``'s children or containers sharing
the home volume. ``up`` empties the folder when it starts.

State figures (outbox backlog, queue depths, dead letters, notifications, report runs) are
not counted but read from the service's database and broker by :class:`StateCollector`
when Prometheus scrapes, with a short timeout, so they are right whichever process changed
them. No metric carries a personal datum: labels are service names, event types, route
templates, statuses and channels.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import socket
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from prometheus_client import Counter, Histogram, values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector, CollectorRegistry
from sqlalchemy import func, select, text

from shared.config import Settings, export

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

EVENTS_PUBLISHED = Counter(
    "servicemonth_events_published",
    "Events the outbox relay published and the broker confirmed",
    ["service", "type"],
)
EVENTS_CONSUMED = Counter(
    "servicemonth_events_consumed",
    "Events taken off a service's queue, by outcome (applied, duplicate, ignored, dead_lettered)",
    ["service", "type", "outcome"],
)
EVENT_RETRIES = Counter(
    "servicemonth_event_retries", "Handler failures retried by a consumer", ["service"]
)
HTTP_DURATION = Histogram(
    "servicemonth_http_request_duration_seconds",
    "HTTP requests by route template and status, and how long they took",
    ["service", "method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)


#: The folder this process counts into (None: its own memory only).
_shared: Path | None = None


def metrics_dir(config: Settings) -> Path:
    return config.home / "metrics"


def use_shared_counters(config: Settings, clean: bool = False) -> None:
    """Count into the deployment's metrics folder (and make the children do so too);
    ``clean`` first empties it (``up``, before it starts its children)."""
    path = metrics_dir(config)
    if clean and path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    export(MULTIPROC_ENV, str(path))  # for the children this process starts
    global _shared
    _shared = path
    # Files are named by this identifier: host and pid, so containers sharing the folder
    # (each with its own pid 7) never write into one another's files.
    host = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())
    values.ValueClass = values.MultiProcessValue(lambda: f"{host}-{os.getpid()}")  # type: ignore[no-untyped-call]


class _Only:
    """The samples of ``source`` for these services (and those with no service label)."""

    def __init__(self, source: Any, services: set[str]) -> None:
        self.source = source
        self.services = services

    def collect(self) -> Iterator[Metric]:
        for family in self.source.collect():
            kept = [
                s
                for s in family.samples
                if "service" not in s.labels or s.labels["service"] in self.services
            ]
            if kept:
                copy = Metric(family.name, family.documentation, family.type, family.unit)
                copy.samples = kept
                yield copy


def process_counters(services: Iterable[str]) -> _Only:
    """The counters of this deployment's processes, for ``services``."""
    path = _shared
    if path is None:
        return _Only(REGISTRY, set(services))
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(path))  # type: ignore[no-untyped-call]
    return _Only(registry, set(services))


# --- state figures, read at scrape time --------------------------------------------------

#: How long a scrape may wait for a database or the broker.
TIMEOUT_SECONDS = 2.0


class StateCollector(Collector):
    """Reads ``services``' state when scraped: outbox backlog and its oldest row's age,
    events waiting in each event queue (the consumer's lag), dead letters, notifications
    by channel and status (a database with a ``notifications`` table), report runs by
    status (one with ``report_runs``). ``runtime_of`` gives a service's runtime."""

    def __init__(self, services: Sequence[str], runtime_of: Callable[[str], Any]) -> None:
        self.services = list(services)
        self.runtime_of = runtime_of

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "servicemonth_state_readable",
            "1 when the scrape could read the service's database (source=database) or "
            "broker (source=broker)",
            labels=["service", "source"],
        )
        backlog = GaugeMetricFamily(
            "servicemonth_outbox_backlog", "Outbox rows not yet published", labels=["service"]
        )
        oldest = GaugeMetricFamily(
            "servicemonth_outbox_oldest_age_seconds",
            "Age of the oldest unpublished outbox row (0 when none)",
            labels=["service"],
        )
        notifications = GaugeMetricFamily(
            "servicemonth_notifications",
            "Notify's messages by channel and status",
            labels=["channel", "status"],
        )
        runs = GaugeMetricFamily(
            "servicemonth_report_runs", "Reporting's report runs by status", labels=["status"]
        )
        waiting = GaugeMetricFamily(
            "servicemonth_event_queue_messages",
            "Events waiting in the service's queue, not yet taken by its consumer",
            labels=["service"],
        )
        dead = GaugeMetricFamily(
            "servicemonth_dead_letter_messages",
            "Messages in the service's dead-letter queue",
            labels=["service"],
        )
        runtimes = {name: self.runtime_of(name) for name in self.services}
        for name, rt in runtimes.items():
            try:
                self._database(name, rt, backlog, oldest, notifications, runs)
                up.add_metric([name, "database"], 1)
            except Exception as exc:
                log.warning("metrics: %s database unreadable: %s", name, type(exc).__name__)
                up.add_metric([name, "database"], 0)
        for name, depths in _queue_depths(runtimes).items():
            up.add_metric([name, "broker"], 0 if depths is None else 1)
            if depths is not None:
                events, dead_letters = depths
                if events is not None:
                    waiting.add_metric([name], events)
                dead.add_metric([name], dead_letters)
        yield from (up, backlog, oldest, waiting, dead, notifications, runs)

    @staticmethod
    def _database(
        name: str,
        rt: Any,
        backlog: GaugeMetricFamily,
        oldest: GaugeMetricFamily,
        notifications: GaugeMetricFamily,
        runs: GaugeMetricFamily,
    ) -> None:
        tables = rt.db.metadata.tables
        with rt.db.reader() as session:
            if not rt.db.is_sqlite:
                ms = int(TIMEOUT_SECONDS * 1000)
                session.execute(text(f"SET LOCAL statement_timeout = {ms}"))
            outbox = tables["outbox"]
            count, first = session.execute(
                select(func.count(), func.min(outbox.c.created_at)).where(
                    outbox.c.sent_at.is_(None)
                )
            ).one()
            backlog.add_metric([name], count)
            age = (rt.clock.now() - first).total_seconds() if first is not None else 0.0
            oldest.add_metric([name], max(age, 0.0))
            if "notifications" in tables:
                table = tables["notifications"]
                for channel, status, n in session.execute(
                    select(table.c.channel, table.c.status, func.count()).group_by(
                        table.c.channel, table.c.status
                    )
                ):
                    notifications.add_metric([channel, status], n)
            if "report_runs" in tables:
                table = tables["report_runs"]
                for status, n in session.execute(
                    select(table.c.status, func.count()).group_by(table.c.status)
                ):
                    runs.add_metric([status], n)


def _queue_depths(runtimes: dict[str, Any]) -> dict[str, tuple[int | None, int] | None]:
    """Per service: (events waiting, dead letters), or None when the broker did not
    answer in time. A service that listens to nothing has no event queue (None). One
    connection per broker, however many services use it."""
    from shared.bus import SUBSCRIPTIONS, connect, dead_letter_queue, event_queue

    by_broker: dict[str, list[str]] = {}
    for name, rt in runtimes.items():
        by_broker.setdefault(rt.settings.broker_url(name), []).append(name)
    found: dict[str, tuple[int | None, int] | None] = {}
    for names in by_broker.values():
        first = runtimes[names[0]]
        conn = connect(first.settings, names[0])
        try:
            conn.ensure_connection(max_retries=1, timeout=TIMEOUT_SECONDS)
            for name in names:
                config = runtimes[name].settings
                waiting = (
                    _depth(conn, event_queue(name, config).name) if SUBSCRIPTIONS[name] else None
                )
                found[name] = (waiting, _depth(conn, dead_letter_queue(name, config).name))
        except Exception as exc:
            log.warning("metrics: broker unreadable for %s: %s", names, type(exc).__name__)
            found.update({name: None for name in names if name not in found})
        finally:
            conn.release()
    return found


def _depth(conn: Any, queue: str) -> int:
    """Messages ready in ``queue`` (0 when nobody has declared it yet)."""
    channel = conn.channel()
    try:
        _, count, _ = channel.queue_declare(queue=queue, passive=True)
        return int(count)
    except conn.channel_errors:
        return 0
    finally:
        with contextlib.suppress(Exception):  # a refusal may have closed it already
            channel.close()
