"""The deployment's one scheduler: APScheduler fires each service's sweeps, nothing else.

A service that keeps a calendar (notify's reminders, reporting's subscriptions) lists its
sweeps in ``services/<name>/tasks.py`` as ``SWEEPS = {task name: seconds}``. The due times
themselves live in the service's tables; a fired job only enqueues the sweep task, and only
while this scheduler holds the service's lease (so one scheduler works per deployment; a
second one waits and takes over when the first stops renewing). The sweep claims each
(job, slot) before acting, so even two schedulers that overlap send each slot once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from datetime import datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler

from services import registry
from shared.config import CAMPAIGN_TZ, SERVICES
from shared.schedule import hold_lease, release_lease
from shared.workers import app_for, task_queue

log = logging.getLogger(__name__)

LEASE = "scheduler"


def holder_name() -> str:
    """Who holds a lease: host, process and a random part (a restarted process is new)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Scheduler:
    """Enqueues every service's sweeps at their intervals while it holds that service's lease."""

    def __init__(self, holder: str | None = None, lease_ttl: float = 90.0) -> None:
        self.holder = holder or holder_name()
        self.ttl = timedelta(seconds=lease_ttl)
        self.sweeps = {s: registry.sweeps(s) for s in SERVICES if registry.sweeps(s)}
        self.held: set[str] = set()

    def tick(self, service: str, task: str) -> bool:
        """Enqueue ``task`` if this scheduler holds ``service``'s lease; True when it did."""
        rt = registry.runtime(service)
        with rt.uow() as uow:
            holding = hold_lease(uow, LEASE, self.holder, self.ttl)
        if holding and service not in self.held:
            log.info("%s: scheduler %s holds the lease", service, self.holder)
        self.held.discard(service)
        if not holding:
            return False
        self.held.add(service)
        app_for(service, rt.settings).send_task(task, queue=task_queue(service, rt.settings))
        return True

    def run(self, stop: threading.Event) -> None:
        scheduler = BackgroundScheduler(timezone=CAMPAIGN_TZ)
        for service, sweeps in self.sweeps.items():
            for task, seconds in sweeps.items():
                scheduler.add_job(
                    self.tick,
                    "interval",
                    args=(service, task),
                    seconds=seconds,
                    id=f"{service}:{task}",
                    coalesce=True,  # missed firings while paused run once, not in a burst
                    max_instances=1,
                    next_run_time=datetime.now(CAMPAIGN_TZ),  # and at once on start
                )
        scheduler.start()
        log.info("scheduler %s started: %s", self.holder, sorted(scheduler.get_jobs(), key=str))
        try:
            stop.wait()
        finally:
            scheduler.shutdown(wait=True)
            for service in self.held:
                with registry.runtime(service).uow() as uow:
                    release_lease(uow, LEASE, self.holder)
