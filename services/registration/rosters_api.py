"""Registration's roster routes (unit rosters, 花名册): upload, follow, get the failures back.

A unit uploads its roster; a Celery task imports it; the unit reads the counts and the
rejected rows, downloads them as ``errors.xlsx`` with a 错误原因 column, fixes them and
uploads that file again. Admins see every roster, an operator those of the district's
units, a unit its own; out of scope answers 404, other roles 403.
"""

from __future__ import annotations

import io
import logging
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Response, UploadFile
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation
from sqlalchemy import func, select

from services.registration import NAME, rosters, runtime
from services.registration.models import AuditEntry, Roster, RosterError, Unit
from shared.auth import Principal, requires
from shared.db import UnitOfWork
from shared.http import DomainError, Invalid, NotFound
from shared.pii import Sealer
from shared.runtime import Runtime
from shared.tabular import MAX_ERRORS
from shared.vocabulary import SKILLS
from shared.workers import app_for, task_queue

log = logging.getLogger(__name__)
# The including router (api.py) adds the /api/v1 prefix.
router = APIRouter(tags=["registration"])
Rt = Annotated[Runtime, Depends(runtime)]
Uploader = Annotated[Principal, Depends(requires(runtime, "admin", "operator", "unit"))]
Anyone = Annotated[Principal, Depends(requires(runtime))]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_BYTES = 50 * 1024 * 1024
SHOWN_ERRORS = 1000
NOT_QUEUED = "the import could not be queued; upload the file again"


class Unavailable(DomainError):
    status = 503
    title = "Service unavailable"


def _unit(uow: UnitOfWork, code: str, principal: Principal) -> Unit:
    unit = uow.session.get(Unit, code)
    if unit is None or not principal.covers(districts={unit.district_code}, units={unit.code}):
        raise NotFound(f"no unit {code}")  # out of scope looks like absent
    return rosters.unit_for(uow, code)  # and open today


def _roster(uow: UnitOfWork, roster_id: uuid.UUID, principal: Principal) -> Roster:
    roster = uow.session.get(Roster, roster_id)
    unit = uow.session.get(Unit, roster.unit_code) if roster is not None else None
    if (
        roster is None
        or unit is None
        or not principal.covers(districts={unit.district_code}, units={unit.code})
    ):
        raise NotFound(f"no roster {roster_id}")  # out of scope looks like absent
    return roster


def enqueue(rt: Runtime, roster_id: uuid.UUID) -> None:
    """Send the import task to registration's own queue (after the roster is committed)."""
    app = app_for(NAME, rt.settings)
    app.send_task(rosters.IMPORT_TASK, args=[str(roster_id)], queue=task_queue(NAME, rt.settings))


@router.post("/rosters", status_code=202)
def upload_roster(
    rt: Rt,
    principal: Uploader,
    response: Response,
    file: Annotated[UploadFile, File(description="xlsx, xls, or CSV in UTF-8 or GBK")],
    unit_code: Annotated[str | None, Form(max_length=40)] = None,
) -> dict[str, str]:
    """Upload a unit's roster; it is imported in the background (poll ``GET``)."""
    code = unit_code or (principal.code if principal.kind == "unit" else "")
    if not code:
        raise Invalid("which unit?", [{"field": "unit_code", "message": "is required"}])
    data = file.file.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise Invalid("the file is too large", [{"field": "file", "message": "over 50 MB"}])
    with rt.uow() as uow:
        unit = _unit(uow, code, principal)
        roster = rosters.create_roster(uow, unit, file.filename or "roster", data, rt.sealer)
        uow.commit()
    try:
        enqueue(rt, roster.id)  # after the commit, so the worker finds the roster
    except Exception:  # the broker is away: say so now rather than leave it running forever
        log.exception("roster %s could not be queued", roster.id)
        rosters.finish(roster.id, rt.uow, rosters.Summary("failed"), "failed", NOT_QUEUED)
        raise Unavailable("the roster could not be queued for import; upload it again") from None
    response.headers["Location"] = f"/api/v1/rosters/{roster.id}"
    return {"id": str(roster.id), "status": roster.status}


@router.get("/rosters/template.xlsx", response_class=Response)
def roster_template(_principal: Anyone) -> Response:
    """The blank roster template (the same as ``servicemonth roster template``)."""
    headers = {"Content-Disposition": "attachment; filename=roster-template.xlsx"}
    return Response(template_workbook(), media_type=XLSX, headers=headers)


@router.get("/rosters/{roster_id}")
def read_roster(roster_id: uuid.UUID, rt: Rt, principal: Uploader) -> dict[str, Any]:
    """Where an import stands: counts, the rejected rows (the first 1000), and the notes on
    landed rows (专长 words kept as the member's own; never a rejection)."""
    with rt.read() as uow:
        roster = _roster(uow, roster_id, principal)
        count = select(func.count()).where(RosterError.roster_id == roster_id)
        return {
            "id": str(roster.id),
            "unit_code": roster.unit_code,
            "filename": roster.filename,
            "status": roster.status,
            "total": roster.total,
            "accepted": roster.accepted,
            "rejected": roster.rejected,
            "duplicates": roster.duplicates,
            "detail": roster.detail,
            "created_at": roster.created_at.isoformat(),
            "finished_at": roster.finished_at.isoformat() if roster.finished_at else None,
            "error_count": uow.session.scalar(count) or 0,
            # Every rejected row is counted; the first MAX_ERRORS are kept with reasons.
            "errors_total": roster.rejected,
            "errors_kept": min(roster.rejected, MAX_ERRORS),
            "errors": rosters.errors_of(uow.session, roster_id, SHOWN_ERRORS),
            # Landed rows with a note, counted and kept the same way.
            "notes_total": roster.noted,
            "notes_kept": min(roster.noted, MAX_ERRORS),
            "notes": rosters.notes_of(uow.session, roster_id, SHOWN_ERRORS),
        }


@router.get("/rosters/{roster_id}/errors.xlsx", response_class=Response)
def roster_errors(roster_id: uuid.UUID, rt: Rt, principal: Uploader) -> Response:
    """The rejected rows as uploaded, plus 错误原因; unmasked personal data, so audited."""
    with rt.uow() as uow:
        _roster(uow, roster_id, principal)
        content, rows = errors_workbook(uow, roster_id, rt.sealer)
        uow.session.add(
            AuditEntry(
                at=uow.now(),
                token_id=principal.token_id,
                role=principal.role,
                scope=principal.scope,
                action="roster_errors_export",
                detail=f"roster {roster_id}: {rows} rows",
            )
        )
        uow.commit()
    headers = {
        "Content-Disposition": f"attachment; filename=roster-{roster_id}-errors.xlsx",
        "Cache-Control": "no-store",
    }
    return Response(content, media_type=XLSX, headers=headers)


def _text_columns(sheet: Any, headers: list[str]) -> None:
    for number, header in enumerate(headers, start=1):
        name = rosters.field_of(header)
        column = sheet.column_dimensions[get_column_letter(number)]
        column.width = 24 if name in rosters.TEXT_FIELDS else max(12, 2 * len(header) + 2)
        if name in rosters.TEXT_FIELDS:
            column.number_format = "@"


def errors_workbook(uow: UnitOfWork, roster_id: uuid.UUID, sealer: Sealer) -> tuple[bytes, int]:
    """The rejected rows with their original columns and a 错误原因 column; and how many."""
    query = (
        select(RosterError.row, RosterError.field, RosterError.message, RosterError.row_sealed)
        .where(RosterError.roster_id == roster_id)
        .order_by(RosterError.row, RosterError.id)
    )
    failed: dict[int, tuple[list[list[str]], list[tuple[str, str]]]] = {}
    for row, name, message, sealed in uow.session.execute(query).tuples():
        if row not in failed:
            cells = sealer.open_json(sealed, rosters.ROW_CONTEXT)["cells"] if sealed else []
            failed[row] = (cells, [])
        failed[row][1].append((name, message))
    first = next(iter(failed.values()), None)
    headers = [h for h, _ in first[0]] if first else [h for _, h in rosters.COLUMNS]
    labels = {rosters.field_of(h): h for h in headers}
    book = Workbook(write_only=True)
    sheet = book.create_sheet("错误行")
    sheet.freeze_panes = "A2"
    _text_columns(sheet, headers)
    sheet.append([*headers, "错误原因"])
    for row, (cells, problems) in failed.items():
        reasons = "；".join(
            f"{labels.get(f) or rosters.LABELS.get(f, f)}：{m}" for f, m in problems
        )
        values = [*(v for _, v in cells), f"第{row}行 — {reasons}"]
        sheet.append([_as_text(sheet, v) for v in values])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue(), len(failed)


def _as_text(sheet: Any, value: str) -> WriteOnlyCell:
    """A cell that holds ``value`` as text, even when it starts with '=' (no formulas)."""
    cell = WriteOnlyCell(sheet, value=value)
    cell.data_type = "s"
    return cell


def template_workbook() -> bytes:
    """A blank roster: the headers of docs/contract.md, ID/phone/community columns as text
    (Excel keeps all 18 digits), 是/否 offered for the cadre column, and a sheet listing the
    skills."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "花名册"
    headers = [h for _, h in rosters.COLUMNS]
    sheet.append(headers)
    sheet.freeze_panes = "A2"
    _text_columns(sheet, headers)
    last = get_column_letter(len(headers))
    yes_no = DataValidation(type="list", formula1='"是,否"', allow_blank=True)
    sheet.add_data_validation(yes_no)
    yes_no.add(f"{last}2:{last}1048576")
    skills = book.create_sheet("专长选项")
    skills.append(["专长（可填多项，用、分隔；其他专长照写即可）"])
    skills.column_dimensions["A"].width = 30
    for skill in SKILLS:
        skills.append([skill])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
