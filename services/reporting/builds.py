"""Building one report run: read the figures, draw the files, then — only if the run is
still this attempt's — mark it done, keep its files and tell the subscriber, in one
transaction; a failure is retried with backoff, and when the attempts are spent the run
fails and the subscriber is told.

The files live in reporting's database (:class:`~.models.StoredReportFile`): the download
route serves them to people and to notify, so no folder is shared between machines. A copy
is also written under ``$SERVICEMONTH_HOME/reports/<id>/`` for the person at this machine
(``servicemonth report run`` and the demo print where); nothing reads it back.

A build only completes if the run is still its own (same attempt, still ``working``), so a
slow worker that was given up on cannot publish a second report.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete

from services.reporting import charts, render, spreadsheet
from services.reporting.contents import ReportData, gather, laggard_threshold
from services.reporting.models import ReportRun, StoredReportFile, Subscription
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
    """A finished report: its files (``contents`` by name, as stored), where this machine's
    copy is, and what it says in one line."""

    report_id: uuid.UUID
    folder: Path
    files: list[ReportFile]
    title: str
    headline: str
    figures: list[tuple[str, str]]
    contents: dict[str, bytes] = field(default_factory=dict, repr=False)

    @property
    def html(self) -> Path:
        return self.folder / "report.html"


def draw_files(data: ReportData, formats: set[str]) -> dict[str, bytes]:
    """The report's files by name, in the order they are listed."""
    contents: dict[str, bytes] = {}
    if "html" in formats:
        contents["report.html"] = render.html(data).encode("utf-8")
        contents["ranking.png"] = charts.ranking_chart(data).png
        contents["progress.png"] = charts.progress_chart(data).png
    if "xlsx" in formats:
        contents["report.xlsx"] = spreadsheet.workbook(data)
    return contents


def copy_files(folder: Path, contents: dict[str, bytes]) -> list[str]:
    """Write ``contents`` into ``folder`` (made afresh, replaced whole): the copy for the
    person at this machine."""
    partial = folder.with_name(f".{folder.name}.{os.getpid()}.{uuid.uuid4().hex[:6]}")
    partial.mkdir(parents=True)
    try:
        for name, content in contents.items():
            (partial / name).write_bytes(content)
        if folder.exists():
            shutil.rmtree(folder)
        partial.rename(folder)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return list(contents)


def write_files(folder: Path, data: ReportData, formats: set[str]) -> list[str]:
    """Draw the report's files and write them into ``folder``; their names."""
    return copy_files(folder, draw_files(data, formats))


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
    """Read the figures and draw the files of one report, copied under this machine's
    reports folder (no state change: :func:`finish` stores them)."""
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
    contents = draw_files(data, formats)
    copy_files(folder, contents)
    files = [ReportFile(path=f"{report_id}/{n}", media_type=MEDIA[n]) for n in contents]
    return Built(report_id, folder, files, data.title, data.sms(), _figures(data), contents)


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
    """Mark the run done, keep its files and tell the subscriber — if it is still ours
    (one transaction: a run is never done without its files)."""
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
        store_files(uow, run_id, built.contents)
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


def store_files(uow: UnitOfWork, report_id: uuid.UUID, contents: dict[str, bytes]) -> None:
    """Keep the report's files with the run (whatever an earlier attempt left is replaced)."""
    uow.session.execute(delete(StoredReportFile).where(StoredReportFile.report_id == report_id))
    uow.session.add_all(
        StoredReportFile(report_id=report_id, name=name, media_type=MEDIA[name], content=data)
        for name, data in contents.items()
    )


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
