"""HTTP routes of scheduled summaries: subscriptions, and the reports kept on disk.

``POST/GET /subscriptions`` (leader, operator, admin), ``GET /reports`` and
``GET /reports/{id}/files/{name}`` (downloads are audited; notify reads files there with the
report-files token, which opens nothing else). Each caller sees only the scopes their token
covers; anything else answers 404 as if it did not exist.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi.responses import FileResponse
from fastapi.security import HTTPAuthorizationCredentials

from services.reporting import views
from services.reporting.access import report_files_reader
from services.reporting.bootstrap import bus, runtime
from services.reporting.commands import DownloadReportFile, Subscribe
from services.reporting.schemas import A_REPORT_FILE, ReportOut, SubscriptionIn, SubscriptionOut
from shared.auth import BEARER, Principal, requires
from shared.messagebus import MessageBus
from shared.runtime import Runtime

router = APIRouter(tags=["reports"])
Bus = Annotated[MessageBus[Runtime], Depends(bus)]
Rt = Annotated[Runtime, Depends(runtime)]
Subscriber = Annotated[Principal, Depends(requires(runtime, "admin", "operator", "leader"))]
_reader = requires(runtime, "admin", "operator", "leader", "unit", "community")
Reader = Annotated[Principal, Depends(_reader)]


def _file_reader(
    rt: Rt, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]
) -> Principal:
    """A person's token (:data:`Reader`), or notify's report-files token."""
    notify = report_files_reader(rt.settings, credentials.credentials if credentials else None)
    return notify or _reader(rt, credentials)


FileReader = Annotated[Principal, Depends(_file_reader)]


@router.post("/subscriptions", status_code=201)
def subscribe(body: SubscriptionIn, bus: Bus, who: Subscriber) -> SubscriptionOut:
    """订阅定期报告 — a scope, a schedule (cron in Asia/Shanghai or ``campaign``), channels,
    formats and the subscriber's contact (sealed; shown masked)."""
    return bus.handle(Subscribe(principal=who, request=body))


@router.get("/subscriptions")
def list_subscriptions(rt: Rt, who: Subscriber) -> list[SubscriptionOut]:
    return views.subscriptions(rt, who)


@router.get("/reports")
def list_reports(rt: Rt, who: Reader, response: Response) -> list[ReportOut]:
    """The reports built so far (newest first), with their files."""
    response.headers["Cache-Control"] = "no-store"
    return views.reports(rt, who)


@router.get(
    "/reports/{report_id}/files/{name}", response_class=FileResponse, responses=A_REPORT_FILE
)
def download(report_id: uuid.UUID, name: str, bus: Bus, who: FileReader) -> Response:
    """One file of a report; every download is recorded (who, which, when)."""
    kept = bus.handle(DownloadReportFile(principal=who, report_id=report_id, name=name))
    disposition = f'attachment; filename="{kept.name}"'  # one of the names builds gives
    return Response(
        kept.content,
        media_type=kept.media_type,
        headers={"Cache-Control": "no-store", "Content-Disposition": disposition},
    )
