"""The deployment's scheduler on both backends: two of them side by side over a simulated
week queue each reminder once, one holds the lease at a time and the other takes over when
it stops renewing; APScheduler itself starts with the jobs and stops cleanly."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from services import registry
from services.notify.models import ReminderRun
from services.notify.reminders import sweep
from services.notify.tasks import SWEEP_REMINDERS
from services.scheduler import LEASE, Scheduler
from shared.clock import SimulatedClock
from shared.runtime import Runtime
from tests.integration.test_notify_reminders import (  # noqa: F401 (rt: a fixture)
    KINDS,
    add_organiser,
    local,
    queued,
    register,
    rt,
    verify,
)

HOUR = timedelta(hours=1)
#: The simulated clock moves an hour per step, and that is the lease's renewal interval: the
#: lease lives three hours (renewed every third of it, as in a deployment: 90 s, every 30 s)
#: and the reminder sweep fires every four — longer than the lease lives, as in a deployment
#: (300 s against 90 s), so only the lease's own renewal job keeps it.
TTL = 3 * 3600.0
SWEEP_EVERY = 4 * 3600.0
START = local(date(2016, 6, 25), 0)  # midnight before the kick-off's eve
STEPS = 24 * 9 + 12  # to noon after the first weekly messages (3 July) and unit lists
#: alpha, which holds the lease first, stops renewing (a hung process) on the first day at
#: 06:00, two hours before the kick-off morning's notice is due, and wakes up at 16:00.
PAUSED = range(24 + 6, 24 + 16)


def fires(seconds: float, step: int) -> bool:
    """Whether a job every ``seconds`` (simulated) fires at ``step`` (each due at once)."""
    return step % round(seconds / HOUR.total_seconds()) == 0


def lease(notify: Runtime) -> tuple[str | None, datetime | None]:
    """Who holds notify's scheduler lease, and until when."""
    with notify.uow() as uow:
        table = uow.db.metadata.tables["scheduler_leases"]
        row = uow.session.execute(
            select(table.c.holder, table.c.expires_at).where(table.c.name == LEASE)
        ).first()
    return (row.holder, row.expires_at) if row else (None, None)


def test_two_schedulers_side_by_side_over_a_week_queue_each_reminder_once(
    rt: Runtime,
) -> None:
    clock = rt.clock
    assert isinstance(clock, SimulatedClock)
    members = [register(rt, f"党员{i}", phone=f"1380013{i:04d}") for i in range(6)]
    verify(rt, members[0], *KINDS)
    register(rt, "司马光", phone="13700137000", cadre=True)
    add_organiser(rt)
    clock.set(START)

    step = 0
    enqueued: list[tuple[int, str]] = []  # (step, scheduler) of each sweep enqueued
    renewed: dict[str, list[int]] = {"alpha": [], "beta": []}  # steps of successful renewals
    leases: list[tuple[int, str | None]] = []  # the lease's holder after each step

    def enqueue_by(name: str) -> Any:
        def enqueue(service: str, task: str) -> None:
            assert (service, task) == ("notify", SWEEP_REMINDERS)
            enqueued.append((step, name))
            sweep(rt, holder=name)  # what the worker would run, synchronously

        return enqueue

    schedulers = {
        name: Scheduler(
            name,
            lease_ttl=TTL,
            enqueue=enqueue_by(name),
            sweeps={"notify": {SWEEP_REMINDERS: SWEEP_EVERY}},
        )
        for name in ("alpha", "beta")
    }
    jobs = schedulers["alpha"].jobs()
    assert [(j.id, j.seconds) for j in jobs] == [
        ("notify:lease", TTL / 3),
        (f"notify:{SWEEP_REMINDERS}", SWEEP_EVERY),
    ]
    assert schedulers["alpha"].renew("notify")  # alpha starts first

    def next_hour() -> None:
        """Run by one thread while both wait: note the lease's holder, move the clock on."""
        nonlocal step
        leases.append((step, lease(rt)[0]))
        step += 1
        clock.advance(HOUR)

    barrier = threading.Barrier(2, action=next_hour)
    errors: list[BaseException] = []

    def run(name: str) -> None:
        scheduler = schedulers[name]
        try:
            for n in range(STEPS):
                if not (name == "alpha" and n in PAUSED):
                    for job in scheduler.jobs():  # what APScheduler fires this hour
                        if fires(job.seconds, n) and job() and job.id == "notify:lease":
                            renewed[name].append(n)
                barrier.wait(timeout=60)
        except BaseException as exc:  # reported below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(name,)) for name in schedulers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert not errors, errors
    assert step == STEPS

    # alpha held the lease until it stopped renewing; beta took it once it had expired and
    # kept it to the end — alpha, woken up, found it taken
    last_alpha, first_beta = max(renewed["alpha"]), min(renewed["beta"])
    assert last_alpha == PAUSED.start - 1
    assert TTL < (first_beta - last_alpha) * HOUR.total_seconds() <= TTL + 3600  # at once
    assert renewed["beta"] == list(range(first_beta, STEPS))
    holders = dict(leases)
    assert [holders[n] for n in range(STEPS)] == (
        ["alpha"] * first_beta + ["beta"] * (STEPS - first_beta)
    )
    # one at a time: every firing of the sweep enqueued once, by the lease's holder only, and
    # none while alpha hung and its lease had not yet expired
    sweeps = [n for n in range(STEPS) if fires(SWEEP_EVERY, n)]
    assert enqueued == [
        (n, "alpha" if n < PAUSED.start else "beta")
        for n in sweeps
        if n < PAUSED.start or n >= first_beta
    ]
    assert all(holders[n] == name for n, name in enqueued)
    late = min(n for n in sweeps if n >= first_beta)  # beta's first sweep

    # each reminder (recipient, kind, slot) queued exactly once, the late one included
    sent = queued(rt)
    per_reminder = Counter((n.member_id or n.staff_id, n.kind, n.slot) for n in sent)
    assert per_reminder and set(per_reminder.values()) == {1}
    assert Counter(n.slot for n in sent) == {
        "kickoff_eve:2016-06-25": 7,
        "kickoff_day:2016-06-26": 7,  # due while nobody swept: beta sent it late, once
        "weekly_progress:2016-07-03": 5,  # the one who is done gets none, the cadre his own
        "cadre_reminder:2016-07-03": 1,
        "unit_behind:2016-07-03": 1,
    }
    with rt.uow() as uow:
        runs = {job: (holder, ran_at) for job, holder, ran_at in uow.session.execute(
            select(ReminderRun.job, ReminderRun.holder, ReminderRun.ran_at))}  # fmt: skip
    assert {job: holder for job, (holder, _) in runs.items()} == {
        "kickoff_eve": "alpha",
        "kickoff_day": "beta",
        "weekly_progress": "beta",
        "cadre_reminder": "beta",
        "unit_behind": "beta",
    }
    assert runs["kickoff_day"][1] == START + late * HOUR  # late, within the grace


def test_apscheduler_starts_with_the_jobs_and_stops_cleanly_giving_the_lease_back(
    backend: Any, caplog: pytest.LogCaptureFixture
) -> None:
    fired = threading.Event()
    calls: list[tuple[str, str]] = []

    def enqueue(service: str, task: str) -> None:
        calls.append((service, task))
        fired.set()

    every = Scheduler("every")  # all services with sweeps: a lease job for each
    ids = [j.id for j in every.jobs()]
    assert {"notify:lease", f"notify:{SWEEP_REMINDERS}", "reporting:lease"} <= set(ids)
    assert all(j.seconds == 30.0 for j in every.jobs() if j.id.endswith(":lease"))

    scheduler = Scheduler("alpha", enqueue=enqueue, sweeps={"notify": registry.sweeps("notify")})
    stop = threading.Event()
    caplog.set_level(logging.INFO, logger="services.scheduler")
    thread = threading.Thread(target=scheduler.run, args=(stop,))
    thread.start()
    try:
        assert fired.wait(30), "the sweep job did not fire on start"
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
    assert set(calls) == {("notify", SWEEP_REMINDERS)}
    started = [r.getMessage() for r in caplog.records if "started" in r.getMessage()]
    assert started == [f"scheduler alpha started: ['notify:lease', 'notify:{SWEEP_REMINDERS}']"]
    # the lease was given back at shutdown: the next scheduler need not wait for it
    assert lease(backend.rt("notify"))[0] == "alpha"
    assert Scheduler("beta").renew("notify")
