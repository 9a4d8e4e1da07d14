"""Downloading a report's file: only a finished report in the caller's scope, only a file
it still keeps, and every download recorded (who, which, when) — the audit trail of report
reads (:class:`~services.reporting.models.ReportDownload`)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path

from services.reporting.access import visible
from services.reporting.models import ReportDownload, ReportRun
from shared.auth import Principal
from shared.config import Settings
from shared.db import UnitOfWork
from shared.http import NotFound


@dataclass(frozen=True)
class KeptFile:
    """A report's file on disk, as a download sends it."""

    path: Path
    name: str
    media_type: str


def open_file(
    uow: UnitOfWork,
    settings: Settings,
    principal: Principal,
    report_id: uuid.UUID,
    name: str,
) -> KeptFile:
    """The file ``name`` of report ``report_id`` for ``principal``, its download recorded
    (the caller commits); 404 for a report that is not done, not theirs or not kept."""
    run = uow.session.get(ReportRun, report_id)
    if run is None or run.status != "done" or not visible(uow, principal, run.scope):
        raise NotFound("no such report")
    files = {f["path"].rsplit("/", 1)[-1]: f["media_type"] for f in json.loads(run.files or "[]")}
    if name not in files:
        raise NotFound(f"report {report_id} has no file {name!r}")
    path = settings.reports_dir / str(report_id) / name
    if not path.is_file():
        raise NotFound(f"report {report_id}: {name} is no longer kept")
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
    return KeptFile(path=path, name=name, media_type=files[name])
