"""Downloading a report's file: only a finished report in the caller's scope, only a file
it keeps, and every download recorded (who, which, when) — the audit trail of report reads
(:class:`~services.reporting.models.ReportDownload`).

The files are read from reporting's own database (:class:`~.models.StoredReportFile`), not
from a folder: people (through the web app) and notify (over HTTP, with the report-files
token: :func:`~services.reporting.access.report_files_reader`) get them wherever reporting
runs.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from services.reporting.access import visible
from services.reporting.models import ReportDownload, ReportRun, StoredReportFile
from shared.auth import Principal
from shared.db import UnitOfWork
from shared.http import NotFound


@dataclass(frozen=True)
class KeptFile:
    """A report's file as a download sends it."""

    name: str
    media_type: str
    content: bytes


def open_file(
    uow: UnitOfWork,
    principal: Principal,
    report_id: uuid.UUID,
    name: str,
) -> KeptFile:
    """The file ``name`` of report ``report_id`` for ``principal``, its download recorded
    (the caller commits); 404 for a report that is not done, not theirs or not kept."""
    run = uow.session.get(ReportRun, report_id)
    if run is None or run.status != "done" or not visible(uow, principal, run.scope):
        raise NotFound("no such report")
    kept = uow.session.get(StoredReportFile, (report_id, name))
    if kept is None:
        raise NotFound(f"report {report_id} has no file {name!r}")
    uow.session.add(
        ReportDownload(
            at=uow.now(),
            token_id=principal.token_id,
            role=principal.role,
            scope=principal.scope,
            report_id=report_id,
            file=name,
        )
    )
    return KeptFile(name=name, media_type=kept.media_type, content=kept.content)
