"""The deployment's one scheduler: APScheduler fires each service's sweeps, nothing else.

A service that keeps a calendar (notify's reminders, reporting's subscriptions) lists its
sweeps in ``services/<name>/tasks.py`` as ``SWEEPS = {task name: seconds}``. The due times
themselves live in the service's tables; a fired job only enqueues the sweep task.

One scheduler works per deployment: it holds a lease row in each service's database. The
lease is renewed by a job of its own every third of its time to live, whatever the sweeps'
intervals (a sweep every 300 s must not let a 90 s lease lapse in between), and a sweep job
enqueues only while this scheduler holds the lease, renewing it at that moment too. A second
scheduler's renewals fail until the first one stops renewing (or gives the leases back at
shutdown); then it takes over. The sweep claims each (job, slot) before acting, so even two
schedulers that overlap briefly (a paused process that wakes up) send each slot once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from sqlalchemy.exc import SQLAlchemyError

from services import registry
from shared import workers
from shared.config import CAMPAIGN_TZ, SERVICES
from shared.schedule import hold_lease, release_lease

log = logging.getLogger(__name__)

LEASE = "scheduler"

#: How a fired sweep reaches its service: (service, task name) → None.
Enqueue = Callable[[str, str], None]


def holder_name() -> str:
    """Who holds a lease: host, process and a random part (a restarted process is new)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def send_task(service: str, task: str) -> None:
    """Enqueue ``task`` on ``service``'s Celery queue (the default :data:`Enqueue`)."""
    workers.send_task(service, registry.runtime(service).settings, task)


@dataclass(frozen=True)
class JobSpec:
    """One APScheduler job: its id, what it calls, and how often (seconds)."""

    id: str
    func: Callable[..., bool]
    args: tuple[str, ...]
    seconds: float

    def __call__(self) -> bool:
        return self.func(*self.args)


class Scheduler:
    """Renews each service's lease on its own job; enqueues each service's sweeps at their
    intervals while it holds that service's lease."""

    def __init__(
        self,
        holder: str | None = None,
        lease_ttl: float = 90.0,
        enqueue: Enqueue | None = None,
        sweeps: Mapping[str, Mapping[str, float]] | None = None,
    ) -> None:
        """``enqueue`` hands a fired sweep over (default: Celery's ``send_task``);
        ``sweeps`` (service → task → seconds) defaults to every service's ``SWEEPS``."""
        self.holder = holder or holder_name()
        self.ttl = timedelta(seconds=lease_ttl)
        self.renew_every = lease_ttl / 3
        self.enqueue: Enqueue = enqueue or send_task
        if sweeps is None:
            sweeps = {s: registry.sweeps(s) for s in SERVICES}
        self.sweeps = {s: dict(tasks) for s, tasks in sweeps.items() if tasks}
        self.held: set[str] = set()
        self._lock = threading.Lock()

    def renew(self, service: str) -> bool:
        """Take or renew ``service``'s lease; True while this scheduler holds it."""
        with self._lock:
            try:
                with registry.runtime(service).uow() as uow:
                    holding = hold_lease(uow, LEASE, self.holder, self.ttl)
            except SQLAlchemyError as exc:  # cannot tell: act as if not holding
                log.warning(
                    "%s: scheduler %s cannot renew its lease: %s", service, self.holder, exc
                )
                holding = False
            if holding and service not in self.held:
                log.info("%s: scheduler %s holds the lease", service, self.holder)
            elif not holding and service in self.held:
                log.warning("%s: scheduler %s lost the lease", service, self.holder)
            if holding:
                self.held.add(service)
            else:
                self.held.discard(service)
            return holding

    def tick(self, service: str, task: str) -> bool:
        """Enqueue ``task`` if this scheduler holds ``service``'s lease (renewed now); True
        when it did."""
        if not self.renew(service):
            return False
        self.enqueue(service, task)
        return True

    def jobs(self) -> list[JobSpec]:
        """Per service: the lease's renewal, then each sweep."""
        found = []
        for service, sweeps in self.sweeps.items():
            found.append(JobSpec(f"{service}:lease", self.renew, (service,), self.renew_every))
            for task, seconds in sweeps.items():
                found.append(JobSpec(f"{service}:{task}", self.tick, (service, task), seconds))
        return found

    def register(self, scheduler: BaseScheduler) -> None:
        """Add :meth:`jobs` to an APScheduler scheduler, each due at once on start."""
        for job in self.jobs():
            options: dict[str, Any] = {
                "coalesce": True,  # missed firings while paused run once, not in a burst
                "max_instances": 1,
                "misfire_grace_time": max(1, int(min(job.seconds, self.renew_every))),
                "next_run_time": datetime.now(CAMPAIGN_TZ),
            }
            scheduler.add_job(
                job.func, "interval", args=job.args, seconds=job.seconds, id=job.id, **options
            )

    def release(self) -> None:
        """Give every lease this scheduler holds back, so the next one need not wait."""
        with self._lock:
            held, self.held = set(self.held), set()
        for service in held:
            try:
                with registry.runtime(service).uow() as uow:
                    release_lease(uow, LEASE, self.holder)
            except SQLAlchemyError as exc:  # it expires by itself
                log.warning("%s: cannot give the lease back: %s", service, exc)

    def run(self, stop: threading.Event) -> None:
        """Fire the jobs until ``stop`` is set; then wait for running jobs and give the
        leases back."""
        scheduler = BackgroundScheduler(timezone=CAMPAIGN_TZ)
        self.register(scheduler)
        scheduler.start()
        log.info(
            "scheduler %s started: %s", self.holder, sorted(j.id for j in scheduler.get_jobs())
        )
        try:
            stop.wait()
        finally:
            scheduler.shutdown(wait=True)
            self.release()
