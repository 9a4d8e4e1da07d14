"""Registration's roster routes (unit rosters, 花名册): upload, follow, get the failures back.

A unit uploads its roster; a Celery task imports it; the unit reads the counts and the
rejected rows, downloads them as ``errors.xlsx`` with a 错误原因 column, fixes them and
uploads that file again. Admins see every roster, an operator those of the district's
units, a unit its own; out of scope answers 404, other roles 403.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Response, UploadFile

from services.registration import views
from services.registration.bootstrap import bus, runtime
from services.registration.commands import ExportRosterErrors, UploadRoster
from services.registration.schemas import RosterAccepted, RosterOut
from services.registration.workbooks import XLSX, template_workbook
from shared.auth import Principal, requires
from shared.http import Invalid
from shared.messagebus import MessageBus
from shared.runtime import Runtime

# The including router (api.py) adds the /api/v1 prefix.
router = APIRouter(tags=["registration"])
Bus = Annotated[MessageBus[Runtime], Depends(bus)]
Rt = Annotated[Runtime, Depends(runtime)]
Uploader = Annotated[Principal, Depends(requires(runtime, "admin", "operator", "unit"))]
Anyone = Annotated[Principal, Depends(requires(runtime))]
MAX_BYTES = 50 * 1024 * 1024
A_WORKBOOK: dict[int | str, dict[str, Any]] = {
    200: {"content": {XLSX: {"schema": {"type": "string", "format": "binary"}}}}
}


@router.post("/rosters", status_code=202)
def upload_roster(
    bus: Bus,
    principal: Uploader,
    response: Response,
    file: Annotated[UploadFile, File(description="xlsx, xls, or CSV in UTF-8 or GBK")],
    unit_code: Annotated[str | None, Form(max_length=40)] = None,
) -> RosterAccepted:
    """Upload a unit's roster; it is imported in the background (poll ``GET``)."""
    data = file.file.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise Invalid("the file is too large", [{"field": "file", "message": "over 50 MB"}])
    accepted = bus.handle(
        UploadRoster(
            principal=principal,
            unit_code=unit_code,
            filename=file.filename or "roster",
            data=data,
        )
    )
    response.headers["Location"] = f"/api/v1/rosters/{accepted.id}"
    return accepted


@router.get("/rosters/template.xlsx", response_class=Response, responses=A_WORKBOOK)
def roster_template(_principal: Anyone) -> Response:
    """The blank roster template (the same as ``servicemonth roster template``)."""
    headers = {"Content-Disposition": "attachment; filename=roster-template.xlsx"}
    return Response(template_workbook(), media_type=XLSX, headers=headers)


@router.get("/rosters/{roster_id}")
def read_roster(roster_id: uuid.UUID, rt: Rt, principal: Uploader) -> RosterOut:
    """Where an import stands: counts, the rejected rows (the first 1000), and the notes on
    landed rows (专长 words kept as the member's own; never a rejection)."""
    return views.roster(rt, principal, roster_id)


@router.get("/rosters/{roster_id}/errors.xlsx", response_class=Response, responses=A_WORKBOOK)
def roster_errors(roster_id: uuid.UUID, bus: Bus, principal: Uploader) -> Response:
    """The rejected rows as uploaded, plus 错误原因; unmasked personal data, so audited."""
    content = bus.handle(ExportRosterErrors(principal=principal, roster_id=roster_id))
    headers = {
        "Content-Disposition": f"attachment; filename=roster-{roster_id}-errors.xlsx",
        "Cache-Control": "no-store",
    }
    return Response(content, media_type=XLSX, headers=headers)
