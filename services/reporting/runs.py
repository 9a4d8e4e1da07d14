"""Report runs: each (subscription, period) reported exactly once, however many schedulers.

``reporting.tick`` (a sweep the deployment's scheduler fires) reads the clock, finds each
subscription's due slots and claims them with a conditional insert on the unique
``(subscription, period_start, period_end)`` of ``report_runs``: the second claimer of a
slot loses, a redelivered tick finds the row and does nothing. After the claim commits, the
build goes to the ``reporting.build`` Celery task (:mod:`services.reporting.builds`).

- A run left ``working`` past the stale timeout (its worker died) is reclaimed by the next
  tick: a conditional update moves it to the new holder with one more attempt.
- A failed build is retried with backoff; when the attempts are spent the run is
  ``failed`` and the subscriber is told (``report.generated`` with ``failed``).
- Slots missed while nothing ran are coalesced: the latest one within the grace period is
  built, the others are recorded ``skipped``.

The build and the on-demand run live in :mod:`.builds` and :mod:`.on_demand`; their
entry points are importable from here too.
"""

from __future__ import annotations

import functools
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import and_, or_, select

from services.reporting.builds import Built, build, produce, write_files
from services.reporting.models import ReportRun, Subscription
from services.reporting.on_demand import run_now
from services.reporting.run_state import Policy, move, tell_failure
from services.reporting.subscriptions import Slot, slots
from shared.db import UnitOfWork
from shared.runtime import Runtime
from shared.schedule import insert_once
from shared.workers import send_task

__all__ = [
    "BUILD_TASK",
    "TICK_TASK",
    "Built",
    "Enqueue",
    "Policy",
    "build",
    "celery_enqueue",
    "produce",
    "run_now",
    "tick",
    "write_files",
]

TICK_TASK = "reporting.tick"
BUILD_TASK = "reporting.build"

#: (run id, attempt) → the build is started somewhere (Celery in production).
Enqueue = Callable[[uuid.UUID, int], None]


def celery_enqueue(rt: Runtime) -> Enqueue:
    """Send the build to the reporting worker's queue (pass ids, not objects)."""

    def enqueue(run_id: uuid.UUID, attempt: int) -> None:
        send_task(rt.service, rt.settings, BUILD_TASK, str(run_id), attempt)

    return enqueue


# --- the tick ----------------------------------------------------------------------------------


def _claim_slots(
    uow: UnitOfWork,
    sub: Subscription,
    due: list[Slot],
    known: set[tuple[datetime, datetime]],
    holder: str,
    policy: Policy,
    now: datetime,
) -> tuple[list[ReportRun], int]:
    """Claim the latest fresh slot of ``due`` not yet ``known`` (its period); record the
    other missing ones skipped."""
    missing = [s for s in due if (s.start, s.end) not in known]
    fresh = [s for s in missing if now - s.at <= policy.grace]
    chosen = fresh[-1] if fresh else None
    claimed, skipped = [], 0
    for slot in missing:
        mine = slot is chosen
        run = ReportRun(
            id=uuid.uuid4(),
            subscription_id=sub.id,
            scope=sub.scope,
            period_start=slot.start,
            period_end=slot.end,
            slot=slot.at,
            status="working" if mine else "skipped",
            attempts=1 if mine else 0,
            holder=holder,
            claimed_at=now,
            finished_at=None if mine else now,
        )
        if insert_once(uow, run):
            if mine:
                claimed.append(run)
            else:
                skipped += 1
    return claimed, skipped


def _reclaim(
    uow: UnitOfWork, district: str, holder: str, policy: Policy
) -> tuple[list[ReportRun], int]:
    """Runs whose retry is due or whose worker went silent: take them over, or give up."""
    now = uow.now()
    candidates = uow.session.scalars(
        select(ReportRun)
        .where(
            or_(
                and_(ReportRun.status == "retry", ReportRun.next_attempt_at <= now),
                and_(ReportRun.status == "working", ReportRun.claimed_at < now - policy.stale),
            )
        )
        .order_by(ReportRun.id)  # the same lock order in every scheduler
    ).all()
    taken, failed = [], 0
    for run in candidates:
        was = (run.status, run.attempts)
        guard = (ReportRun.id == run.id, ReportRun.status == was[0], ReportRun.attempts == was[1])
        if run.attempts >= policy.max_attempts:
            error = run.error or "the worker stopped answering"
            if move(uow, guard, status="failed", finished_at=now, error=error):
                tell_failure(uow, district, run.id)
                failed += 1
        elif move(
            uow, guard, status="working", attempts=run.attempts + 1, holder=holder, claimed_at=now
        ):
            taken.append(run)
    return taken, failed


def _known_periods(
    uow: UnitOfWork, subscription_ids: list[uuid.UUID]
) -> dict[uuid.UUID | None, set[tuple[datetime, datetime]]]:
    """The periods each subscription already has a run for, in one query."""
    known: dict[uuid.UUID | None, set[tuple[datetime, datetime]]] = defaultdict(set)
    if subscription_ids:
        rows = uow.session.execute(
            select(ReportRun.subscription_id, ReportRun.period_start, ReportRun.period_end).where(
                ReportRun.subscription_id.in_(subscription_ids)
            )
        ).tuples()
        for sub_id, start, end in rows:
            known[sub_id].add((start, end))
    return known


def tick(rt: Runtime, holder: str, enqueue: Enqueue) -> dict[str, int]:
    """One sweep: claim due slots, retry or reclaim runs, start the builds after commit."""
    policy = Policy.of(rt.settings)
    counts: Counter[str] = Counter()
    with rt.uow() as uow:
        subs = uow.session.scalars(
            select(Subscription).where(Subscription.active).order_by(Subscription.id)
        ).all()
        now = uow.now()
        due = {
            sub.id: [s for s in slots(sub.schedule, rt.settings) if sub.created_at < s.at <= now]
            for sub in subs
        }
        known = _known_periods(uow, [sub_id for sub_id, found in due.items() if found])
        starts: list[tuple[uuid.UUID, int]] = []
        for sub in subs:
            if not due[sub.id]:
                continue
            claimed, skipped = _claim_slots(
                uow, sub, due[sub.id], known[sub.id], holder, policy, now
            )
            starts += [(r.id, 1) for r in claimed]
            counts["claimed"] += len(claimed)
            counts["skipped"] += skipped
        taken, failed = _reclaim(uow, rt.settings.district, holder, policy)
        starts += [(r.id, r.attempts + 1) for r in taken]
        counts["reclaimed"] += len(taken)
        counts["failed"] += failed
        for run_id, attempt in starts:
            uow.after_commit(functools.partial(enqueue, run_id, attempt))
        uow.commit()
    return {k: v for k, v in counts.items() if v}
