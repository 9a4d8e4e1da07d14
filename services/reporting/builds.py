"""Building one report run: read the figures, write the files, then — only if the run is
still this attempt's — mark it done and tell the subscriber; a failure is retried with
backoff, and when the attempts are spent the run fails and the subscriber is told.

A build only completes if the run is still its own (same attempt, still ``working``), so a
slow worker that was given up on cannot publish a second report.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from services.reporting import charts, render, spreadsheet
from services.reporting.contents import ReportData, gather, laggard_threshold
from services.reporting.models import ReportRun, Subscription
from services.reporting.run_state import Policy, announce, move, tell_failure
from services.reporting.subscriptions import campaign_window
from shared.config import Settings
from shared.db import UnitOfWork
from shared.events import ReportFile
from shared.pii import error_line
from shared.runtime import Runtime

log = logging.getLogger(__name__)


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
    return [(h.label, render.value(h)) for h in data.headline]


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
            # No traceback: its frames and message could carry personal data (the backbone's
            # rule); the type and the first line say what failed.
            log.error("report run %s attempt %s failed: %s", run_id, attempt, error_line(exc))
            uow.session.rollback()
            return _failed(uow, rt.settings, run_id, attempt, exc)
    return finish(rt, run_id, attempt, built)


def finish(rt: Runtime, run_id: uuid.UUID, attempt: int, built: Built) -> str:
    """Mark the run done with its files and tell the subscriber — if it is still ours."""
    with rt.uow() as uow:
        guard = (ReportRun.id == run_id, ReportRun.status == "working")
        files = json.dumps([f.model_dump() for f in built.files], ensure_ascii=False)
        if not move(
            uow,
            (*guard, ReportRun.attempts == attempt),
            status="done",
            finished_at=uow.now(),
            headline=built.headline[:500],
            files=files,
            error=None,
        ):
            return "not-ours"
        announce(
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
    error = error_line(exc)[:500]
    if attempt >= policy.max_attempts:
        if move(uow, guard, status="failed", finished_at=now, error=error):
            tell_failure(uow, settings.district, run_id)
        outcome = "failed"
    else:
        move(
            uow,
            guard,
            status="retry",
            next_attempt_at=now + policy.retry_after(attempt),
            error=error,
        )
        outcome = "retry"
    uow.commit()
    return outcome
