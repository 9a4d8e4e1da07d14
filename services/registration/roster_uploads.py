"""A unit's roster from upload to import: kept sealed and queued for registration's worker,
imported by the task (:func:`services.registration.rosters.import_roster`), queued again by
the consume process's sweep when its task was lost, and its rejected rows handed back as
``errors.xlsx`` (unmasked personal data, so every export is audited).

Admins reach every roster, an operator those of its district's units, a unit its own; out
of scope reads as absent (404).
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from sqlalchemy import select

from services.registration import NAME, rosters, workbooks
from services.registration.commands import (
    ExportRosterErrors,
    ImportRoster,
    ImportRosterFile,
    ResendStuckRosters,
    RosterImported,
    UploadRoster,
)
from services.registration.models import AuditEntry, Roster
from services.registration.schemas import RosterAccepted
from shared.http import DomainError, Invalid, NotFound
from shared.runtime import Runtime
from shared.workers import send_task

log = logging.getLogger(__name__)

NOT_QUEUED = "the import could not be queued; upload the file again"
STUCK_AFTER = timedelta(minutes=30)  # a 200,000-row roster takes about 7


class Unavailable(DomainError):
    status = 503
    title = "Service unavailable"


def enqueue(rt: Runtime, roster_id: uuid.UUID) -> None:
    """Send the import task to registration's own queue (after the roster is committed)."""
    send_task(NAME, rt.settings, rosters.IMPORT_TASK, str(roster_id))


def upload(cmd: UploadRoster, rt: Runtime) -> RosterAccepted:
    """Keep the file for the unit (the caller's own unit when none is named) and queue its
    import; a broker that cannot take the task fails the roster now (503) rather than leave
    it running for ever."""
    principal = cmd.principal
    code = cmd.unit_code or (principal.code if principal.kind == "unit" else "")
    if not code:
        raise Invalid("which unit?", [{"field": "unit_code", "message": "is required"}])
    with rt.uow() as uow:
        unit = rosters.unit_in_scope(uow, code, principal)
        roster = rosters.create_roster(uow, unit, cmd.filename, cmd.data, rt.sealer)
        uow.commit()
    try:
        enqueue(rt, roster.id)  # after the commit, so the worker finds the roster
    except Exception:  # the broker is away: say so now rather than leave it running forever
        log.exception("roster %s could not be queued", roster.id)
        rosters.finish(roster.id, rt.uow, rosters.Summary("failed"), "failed", NOT_QUEUED)
        raise Unavailable("the roster could not be queued for import; upload it again") from None
    return RosterAccepted(id=str(roster.id), status=roster.status)


def run_import(cmd: ImportRoster, rt: Runtime) -> str:
    """花名册导入 — a roster already done does nothing; a half-done one continues; one that
    is gone is ``missing``."""
    try:
        return rosters.import_roster(cmd.roster_id, rt.uow, rt.sealer).status
    except NotFound:
        log.warning("roster %s is gone; nothing to import", cmd.roster_id)
        return "missing"


def import_file(cmd: ImportRosterFile, rt: Runtime) -> RosterImported:
    """``servicemonth roster import``: keep the file and import it here and now."""
    with rt.uow() as uow:
        unit = rosters.unit_for(uow, cmd.unit_code)
        roster_id = rosters.create_roster(uow, unit, cmd.filename, cmd.data, rt.sealer).id
        uow.commit()
    summary = rosters.import_roster(roster_id, rt.uow, rt.sealer, progress=cmd.progress)
    with rt.read() as uow:
        errors = rosters.errors_of(uow.session, roster_id, cmd.show)
        notes = rosters.notes_of(uow.session, roster_id, cmd.show)
    return RosterImported(roster_id, summary, errors, notes)


def resend_stuck(cmd: ResendStuckRosters, rt: Runtime) -> int:
    """A roster still running long after upload, its file unread, lost its task: send it
    again (the import is idempotent, so a slow one run twice adds nothing)."""
    with rt.uow() as uow:
        stuck = list(
            uow.session.scalars(
                select(Roster.id).where(
                    Roster.status == "running",
                    Roster.content.is_not(None),
                    Roster.created_at < uow.now() - STUCK_AFTER,
                )
            )
        )
    for roster_id in stuck:
        enqueue(rt, roster_id)
    return len(stuck)


def export_errors(cmd: ExportRosterErrors, rt: Runtime) -> bytes:
    """The rejected rows as uploaded, plus 错误原因; the export is audited."""
    principal = cmd.principal
    with rt.uow() as uow:
        rosters.visible_roster(uow, cmd.roster_id, principal)
        content, rows = workbooks.errors_workbook(uow, cmd.roster_id, rt.sealer)
        uow.session.add(
            AuditEntry(
                at=uow.now(),
                token_id=principal.token_id,
                subject=principal.subject or None,
                role=principal.role,
                scope=principal.scope,
                action="roster_errors_export",
                detail=f"roster {cmd.roster_id}: {rows} rows",
            )
        )
        uow.commit()
    return content
