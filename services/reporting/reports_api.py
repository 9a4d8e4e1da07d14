"""HTTP routes of scheduled summaries: subscriptions, and the reports kept on disk.

``POST/GET /subscriptions`` (leader, operator, admin), ``GET /reports`` and
``GET /reports/{id}/files/{name}`` (downloads are audited). Each caller sees only the
scopes their token covers; anything else answers 404 as if it did not exist.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from fastapi.responses import FileResponse
from sqlalchemy import select

from services.reporting import runtime, subscriptions
from services.reporting.handlers import visible
from services.reporting.models import ReportDownload, ReportRun
from shared.auth import Principal, requires
from shared.http import NotFound
from shared.runtime import Runtime

router = APIRouter(tags=["reports"])
Rt = Annotated[Runtime, Depends(runtime)]
Subscriber = Annotated[Principal, Depends(requires(runtime, "admin", "operator", "leader"))]
Reader = Annotated[
    Principal, Depends(requires(runtime, "admin", "operator", "leader", "unit", "community"))
]


@router.post("/subscriptions", status_code=201)
def subscribe(body: subscriptions.SubscriptionIn, rt: Rt, who: Subscriber) -> dict[str, Any]:
    """订阅定期报告 — a scope, a schedule (cron in Asia/Shanghai or ``campaign``), channels,
    formats and the subscriber's contact (sealed; shown masked)."""
    with rt.uow() as uow:
        sub = subscriptions.subscribe(uow, body, who, rt.sealer, rt.settings)
        uow.commit()
        return subscriptions.view(sub)


@router.get("/subscriptions")
def list_subscriptions(rt: Rt, who: Subscriber) -> list[dict[str, Any]]:
    with rt.read() as uow:
        return subscriptions.listed(uow, who)


def _view(run: ReportRun) -> dict[str, Any]:
    files = json.loads(run.files or "[]")
    return {
        "id": str(run.id),
        "state": run.status,
        "subscription_id": str(run.subscription_id) if run.subscription_id else None,
        "scope": run.scope,
        "period_start": run.period_start.isoformat(),
        "period_end": run.period_end.isoformat(),
        "attempts": run.attempts,
        "headline": run.headline,
        "files": [
            {
                "name": f["path"].rsplit("/", 1)[-1],
                "media_type": f["media_type"],
                "url": f"/api/v1/reports/{run.id}/files/{f['path'].rsplit('/', 1)[-1]}",
            }
            for f in files
        ],
    }


@router.get("/reports")
def list_reports(rt: Rt, who: Reader, response: Response) -> list[dict[str, Any]]:
    """The reports built so far (newest first), with their files."""
    response.headers["Cache-Control"] = "no-store"
    with rt.read() as uow:
        runs = uow.session.scalars(
            select(ReportRun)
            .where(ReportRun.status.in_(("done", "failed")))
            .order_by(ReportRun.period_end.desc(), ReportRun.id)
        ).all()
        return [_view(r) for r in runs if visible(uow, who, r.scope)]


@router.get("/reports/{report_id}/files/{name}")
def download(report_id: uuid.UUID, name: str, rt: Rt, who: Reader) -> FileResponse:
    """One file of a report; every download is recorded (who, which, when)."""
    with rt.uow() as uow:
        run = uow.session.get(ReportRun, report_id)
        if run is None or run.status != "done" or not visible(uow, who, run.scope):
            raise NotFound("no such report")
        files = {
            f["path"].rsplit("/", 1)[-1]: f["media_type"] for f in json.loads(run.files or "[]")
        }
        if name not in files:
            raise NotFound(f"report {report_id} has no file {name!r}")
        path = rt.settings.reports_dir / str(report_id) / name
        if not path.is_file():
            raise NotFound(f"report {report_id}: {name} is no longer kept")
        uow.session.add(
            ReportDownload(
                at=uow.now(),
                token_id=who.token_id,
                role=who.role,
                scope=who.scope,
                report_id=report_id,
                file=name,
            )
        )
        uow.commit()
    return FileResponse(
        path, media_type=files[name], filename=name, headers={"Cache-Control": "no-store"}
    )
