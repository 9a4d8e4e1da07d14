"""Report runs: each (subscription, period) reported exactly once, however many schedulers.

``reporting.tick`` (a sweep the deployment's scheduler fires) reads the clock, finds each
subscription's due slots and claims them with a conditional insert on the unique
``(subscription, period_start, period_end)`` of ``report_runs``: the second claimer of a
slot loses, a redelivered tick finds the row and does nothing. After the claim commits, the
build goes to the ``reporting.build`` Celery task.

- A run left ``working`` past the stale timeout (its worker died) is reclaimed by the next
  tick: a conditional update moves it to the new holder with one more attempt.
- A failed build is retried with backoff; when the attempts are spent the run is
  ``failed`` and the subscriber is told (``report.generated`` with ``failed``).
- Slots missed while nothing ran are coalesced: the latest one within the grace period is
  built, the others are recorded ``skipped``.

A build only completes if the run is still its own (same attempt, still ``working``), so a
slow worker that was given up on cannot publish a second report.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError

from services.reporting import charts, render, spreadsheet
from services.reporting.contents import ReportData, gather, laggard_threshold
from services.reporting.models import ReportRun, Subscription
from services.reporting.subscriptions import campaign_window, recipient, slots
from shared.config import Settings
from shared.db import UnitOfWork
from shared.events import ReportFile, ReportGenerated
from shared.runtime import Runtime
from shared.workers import app_for, task_queue

log = logging.getLogger(__name__)

TICK_TASK = "reporting.tick"
BUILD_TASK = "reporting.build"

#: (run id, attempt) → the build is started somewhere (Celery in production).
Enqueue = Callable[[uuid.UUID, int], None]


@dataclass(frozen=True)
class Policy:
    """How long a claim lives, how far back a missed slot is still worth a report, retries."""

    stale: timedelta = timedelta(seconds=600)
    grace: timedelta = timedelta(hours=24)
    max_attempts: int = 3
    backoff: timedelta = timedelta(seconds=60)

    @classmethod
    def of(cls, settings: Settings) -> Policy:
        stale = settings.get("REPORTING_STALE_SECONDS")
        grace = settings.get("REPORTING_GRACE_HOURS")
        attempts = settings.get("REPORTING_MAX_ATTEMPTS")
        return cls(
            stale=timedelta(seconds=float(stale)) if stale else cls.stale,
            grace=timedelta(hours=float(grace)) if grace else cls.grace,
            max_attempts=int(attempts) if attempts else cls.max_attempts,
        )

    def retry_after(self, attempt: int) -> timedelta:
        return timedelta(seconds=self.backoff.total_seconds() * 2 ** max(attempt - 1, 0))


def celery_enqueue(rt: Runtime) -> Enqueue:
    """Send the build to the reporting worker's queue (pass ids, not objects)."""

    def enqueue(run_id: uuid.UUID, attempt: int) -> None:
        app_for(rt.service, rt.settings).send_task(
            BUILD_TASK, args=[str(run_id), attempt], queue=task_queue(rt.service, rt.settings)
        )

    return enqueue


# --- the tick ----------------------------------------------------------------------------------


def _insert(uow: UnitOfWork, run: ReportRun) -> bool:
    try:
        with uow.session.begin_nested():
            uow.session.add(run)
    except IntegrityError:
        return False
    return True


def _claim_slots(
    uow: UnitOfWork, sub: Subscription, settings: Settings, holder: str, policy: Policy
) -> tuple[list[ReportRun], int]:
    now = uow.now()
    due = [s for s in slots(sub.schedule, settings) if sub.created_at < s.at <= now]
    if not due:
        return [], 0
    known = set(
        uow.session.execute(
            select(ReportRun.period_start, ReportRun.period_end).where(
                ReportRun.subscription_id == sub.id
            )
        ).tuples()
    )
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
        if _insert(uow, run):
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
            if _move(uow, guard, status="failed", finished_at=now, error=error):
                _tell_failure(uow, district, run.id)
                failed += 1
        elif _move(
            uow, guard, status="working", attempts=run.attempts + 1, holder=holder, claimed_at=now
        ):
            taken.append(run)
    return taken, failed


def _move(uow: UnitOfWork, guard: tuple[Any, ...], **values: Any) -> bool:
    """A conditional update of one run; True when this caller's condition still held."""
    done = uow.session.execute(
        update(ReportRun)
        .where(*guard)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(done.rowcount)  # type: ignore[attr-defined]


def tick(rt: Runtime, holder: str, enqueue: Enqueue) -> dict[str, int]:
    """One sweep: claim due slots, retry or reclaim runs, start the builds after commit."""
    policy = Policy.of(rt.settings)
    counts: Counter[str] = Counter()
    with rt.uow() as uow:
        subs = uow.session.scalars(
            select(Subscription).where(Subscription.active).order_by(Subscription.id)
        ).all()
        starts: list[tuple[uuid.UUID, int]] = []
        for sub in subs:
            claimed, skipped = _claim_slots(uow, sub, rt.settings, holder, policy)
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


# --- the build ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Built:
    """A finished report: where it is and what it says in one line."""

    report_id: uuid.UUID
    folder: Path
    files: list[ReportFile]
    title: str
    headline: str
    figures: list[tuple[str, str]]

    @property
    def html(self) -> Path:
        return self.folder / "report.html"


def write_files(folder: Path, data: ReportData, formats: set[str]) -> list[str]:
    """Write the report's files into ``folder`` (made afresh, replaced whole)."""
    partial = folder.with_name(f".{folder.name}.{os.getpid()}.{uuid.uuid4().hex[:6]}")
    partial.mkdir(parents=True)
    names = []
    try:
        if "html" in formats:
            for name, chart in (
                ("ranking.png", charts.ranking_chart(data)),
                ("progress.png", charts.progress_chart(data)),
            ):
                (partial / name).write_bytes(chart.png)
            (partial / "report.html").write_text(render.html(data), encoding="utf-8")
            names += ["report.html", "ranking.png", "progress.png"]
        if "xlsx" in formats:
            (partial / "report.xlsx").write_bytes(spreadsheet.workbook(data))
            names.append("report.xlsx")
        if folder.exists():
            shutil.rmtree(folder)
        partial.rename(folder)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return names


MEDIA = {
    "report.html": "text/html",
    "ranking.png": "image/png",
    "progress.png": "image/png",
    "report.xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def _figures(data: ReportData) -> list[tuple[str, str]]:
    return [(h.label, render._value(h)) for h in data.headline]


def produce(
    uow: UnitOfWork,
    settings: Settings,
    report_id: uuid.UUID,
    scope: str,
    start: datetime,
    end: datetime,
    formats: set[str],
    source: Any = None,
) -> Built:
    """Read the figures and write the files of one report (no state change)."""
    window = campaign_window(settings)
    data = gather(
        uow,
        scope,
        start,
        end,
        threshold=laggard_threshold(settings),
        campaign_start=settings.campaign_start,
        final=(start, end) == window,
        source=source,
    )
    uow.session.rollback()  # drawing takes a while: hold no transaction (SQLite's write lock)
    folder = settings.reports_dir / str(report_id)
    names = write_files(folder, data, formats)
    files = [ReportFile(path=f"{report_id}/{n}", media_type=MEDIA[n]) for n in names]
    return Built(report_id, folder, files, data.title, data.sms(), _figures(data))


def build(rt: Runtime, run_id: uuid.UUID, attempt: int, source: Any = None) -> str:
    """The ``reporting.build`` task's work: build the run's report if it is still ours."""
    with rt.uow() as uow:
        run = uow.session.get(ReportRun, run_id)
        if run is None or run.status != "working" or run.attempts != attempt:
            return "not-ours"
        sub = uow.session.get(Subscription, run.subscription_id) if run.subscription_id else None
        formats = set(sub.formats.split(",")) if sub else {"html", "xlsx"}
        try:
            built = produce(
                uow,
                rt.settings,
                run.id,
                run.scope,
                run.period_start,
                run.period_end,
                formats,
                source,
            )
        except Exception as exc:
            log.exception("report run %s attempt %s failed", run_id, attempt)
            uow.session.rollback()
            return _failed(uow, rt.settings, run_id, attempt, exc)
    return _done(rt, run_id, attempt, built)


def _done(rt: Runtime, run_id: uuid.UUID, attempt: int, built: Built) -> str:
    with rt.uow() as uow:
        guard = (ReportRun.id == run_id, ReportRun.status == "working")
        files = json.dumps([f.model_dump() for f in built.files], ensure_ascii=False)
        if not _move(
            uow,
            (*guard, ReportRun.attempts == attempt),
            status="done",
            finished_at=uow.now(),
            headline=built.headline[:500],
            files=files,
            error=None,
        ):
            return "not-ours"
        _announce(
            uow,
            rt.settings.district,
            run_id,
            built.title,
            built.headline,
            built.files,
            failed=False,
        )
        uow.commit()
    return "done"


def _failed(
    uow: UnitOfWork, settings: Settings, run_id: uuid.UUID, attempt: int, exc: Exception
) -> str:
    policy = Policy.of(settings)
    now = uow.now()
    guard = (ReportRun.id == run_id, ReportRun.status == "working", ReportRun.attempts == attempt)
    error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:500]
    if attempt >= policy.max_attempts:
        if _move(uow, guard, status="failed", finished_at=now, error=error):
            _tell_failure(uow, settings.district, run_id)
        outcome = "failed"
    else:
        _move(
            uow,
            guard,
            status="retry",
            next_attempt_at=now + policy.retry_after(attempt),
            error=error,
        )
        outcome = "retry"
    uow.commit()
    return outcome


def _tell_failure(uow: UnitOfWork, district: str, run_id: uuid.UUID) -> None:
    headline = "本期定期报告生成失败，技术人员正在处理，恢复后将补发。"
    _announce(
        uow, district, run_id, "在职党员进社区服务月定期报告（生成失败）", headline, [], failed=True
    )


def _announce(
    uow: UnitOfWork,
    district: str,
    run_id: uuid.UUID,
    title: str,
    headline: str,
    files: list[ReportFile],
    *,
    failed: bool,
) -> None:
    """``report.generated`` for a subscriber (an on-demand run has nobody to tell)."""
    run = uow.session.get(ReportRun, run_id)
    assert run is not None
    sub = uow.session.get(Subscription, run.subscription_id) if run.subscription_id else None
    if sub is None:
        return
    event = ReportGenerated(
        report_id=run.id,
        subscription_id=sub.id,
        scope=run.scope,
        period_start=run.period_start,
        period_end=run.period_end,
        title=title,
        headline=headline,
        files=files,
        recipient=recipient(sub),
        channels=[c for c in sub.channels.split(",") if c in ("sms", "email")],
        failed=failed,
    )
    uow.emit(event, district=district)


# --- on demand ---------------------------------------------------------------------------------


def run_now(
    rt: Runtime,
    scope: str,
    start: datetime | None = None,
    end: datetime | None = None,
    source: Any = None,
) -> Built:
    """Build one report now, without a subscription (``servicemonth report run``, the demo).

    The period defaults to the campaign start until now (at most the close).
    """
    first, close = campaign_window(rt.settings)
    with rt.uow() as uow:
        now = uow.now()
        start = start or first
        end = end or min(now, close)
        run = ReportRun(
            id=uuid.uuid4(),
            subscription_id=None,
            scope=scope,
            period_start=start,
            period_end=end,
            slot=now,
            status="working",
            attempts=1,
            holder=f"on-demand:{os.getpid()}",
            claimed_at=now,
        )
        uow.session.add(run)
        uow.commit()
        run_id = run.id
        built = produce(uow, rt.settings, run_id, scope, start, end, {"html", "xlsx"}, source)
    _done(rt, run_id, 1, built)
    return built
