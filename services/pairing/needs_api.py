"""双对接 over HTTP: community staff publish targets, needs, projects and teams (one by one or
from a spreadsheet); pairing runs, a member's pairings, the community report, staff
overrides and a member's decline. Routes check the caller's role, hand a command to the bus
or read a view."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, File, Path, Response, UploadFile

from services.pairing import bootstrap, views
from services.pairing.commands import (
    CreateTeam,
    DeclinePairing,
    PairByStaff,
    PublishNeed,
    PublishProject,
    PublishTarget,
    RemovePairing,
    RunPairing,
    UploadNeeds,
    UploadProjects,
)
from services.pairing.needs import MAX_BYTES
from services.pairing.schemas import (
    MemberPairingsOut,
    NeedIn,
    NeedOut,
    PairIn,
    PairingOut,
    PairingReportOut,
    PairingRunOut,
    ProjectIn,
    ProjectOut,
    RunIn,
    TargetIn,
    TargetOut,
    TeamIn,
    TeamOut,
    UploadOut,
)
from shared.auth import Principal, requires
from shared.messagebus import MessageBus
from shared.runtime import Runtime

router = APIRouter(tags=["pairing"])  # api.py's router adds the /api/v1 prefix
runtime = bootstrap.runtime
Rt = Annotated[Runtime, Depends(runtime)]
Bus = Annotated[MessageBus[Runtime], Depends(bootstrap.bus)]
Staff = Annotated[Principal, Depends(requires(runtime, "admin", "operator", "community"))]
Reader = Annotated[
    Principal, Depends(requires(runtime, "admin", "operator", "community", "member"))
]
Code = Annotated[str, Path(pattern=r"^\d{12}$")]
Sheet = Annotated[UploadFile, File(description="xlsx, or CSV in UTF-8 or GBK")]


def _read(file: UploadFile) -> bytes:
    """The upload, read no further than one byte past the largest allowed."""
    return file.file.read(MAX_BYTES + 1)


# --- publishing -------------------------------------------------------------------------------


@router.post("/communities/{code}/targets", status_code=201)
def publish_target(code: Code, body: TargetIn, bus: Bus, who: Staff) -> TargetOut:
    """服务对象 — a resident in need, stored masked; sensitive categories need consent."""
    values = body.model_dump()
    return bus.handle(PublishTarget(principal=who, community_code=code, values=values))


@router.post("/communities/{code}/needs", status_code=201)
def publish_need(code: Code, body: NeedIn, bus: Bus, who: Staff) -> NeedOut:
    """需求清单 — an item of the needs list; the community is paired again at once."""
    values = body.model_dump()
    return bus.handle(PublishNeed(principal=who, community_code=code, values=values))


@router.post("/communities/{code}/projects", status_code=201)
def publish_project(code: Code, body: ProjectIn, bus: Bus, who: Staff) -> ProjectOut:
    """服务项目 — 文明创建, 治安巡逻, 环境卫生 …; the community is paired again at once."""
    values = body.model_dump()
    return bus.handle(PublishProject(principal=who, community_code=code, values=values))


@router.post("/communities/{code}/teams", status_code=201)
def publish_team(code: Code, body: TeamIn, bus: Bus, who: Staff) -> TeamOut:
    values = body.model_dump()
    return bus.handle(CreateTeam(principal=who, community_code=code, values=values))


@router.post("/communities/{code}/needs/upload", status_code=201)
def upload_needs(code: Code, file: Sheet, bus: Bus, who: Staff) -> UploadOut:
    """Publish a needs list from a spreadsheet: good rows land, bad ones come back by row."""
    return bus.handle(UploadNeeds(principal=who, community_code=code, data=_read(file)))


@router.post("/communities/{code}/projects/upload", status_code=201)
def upload_projects(code: Code, file: Sheet, bus: Bus, who: Staff) -> UploadOut:
    return bus.handle(UploadProjects(principal=who, community_code=code, data=_read(file)))


@router.get("/communities/{code}/targets")
def list_targets(code: Code, rt: Rt, who: Staff) -> list[TargetOut]:
    return views.list_targets(rt, code, who)


@router.get("/communities/{code}/needs")
def list_needs(code: Code, rt: Rt, who: Staff) -> list[NeedOut]:
    return views.list_needs(rt, code, who)


@router.get("/communities/{code}/projects")
def list_projects(code: Code, rt: Rt, who: Staff) -> list[ProjectOut]:
    return views.list_projects(rt, code, who)


@router.get("/communities/{code}/teams")
def list_teams(code: Code, rt: Rt, who: Staff) -> list[TeamOut]:
    return views.list_teams(rt, code, who)


# --- pairing ----------------------------------------------------------------------------------


@router.post("/pairings/run", status_code=202)
def run_pairing(body: RunIn, bus: Bus, who: Staff, response: Response) -> PairingRunOut:
    """Queue a run pairing the members of a scope (community, district, city) for pairing's
    worker: answered at once, ``queued``; follow it at ``Location``. Only adds pairings."""
    run = bus.handle(RunPairing(principal=who, scope=body.scope))
    response.headers["Location"] = f"/api/v1/pairings/runs/{run.id}"
    return run


@router.get("/pairings/runs/{run_id}")
def pairing_run(run_id: uuid.UUID, rt: Rt, who: Staff) -> PairingRunOut:
    """A run's state (queued, running, done, failed), phase, counts so far and, once done,
    its summary."""
    return views.pairing_run(rt, run_id, who)


@router.get("/members/{member_id}/pairings")
def member_pairings(member_id: uuid.UUID, rt: Rt, who: Reader) -> MemberPairingsOut:
    return views.member_pairings(rt, member_id, who)


@router.get("/communities/{code}/pairing-report")
def pairing_report(code: Code, rt: Rt, who: Staff) -> PairingReportOut:
    """Who is not yet 双对接 and why; which needs and projects have open places and why."""
    return views.pairing_report(rt, code, who)


@router.post("/pairings", status_code=201)
def pair_by_staff(body: PairIn, bus: Bus, who: Staff) -> PairingOut:
    """A staff override: pair a member confirmed here with a need or a project."""
    command = PairByStaff(
        principal=who, member_id=body.member_id, need_id=body.need_id, project_id=body.project_id
    )
    return bus.handle(command)


@router.delete("/pairings/{pairing_id}")
def remove_pairing(pairing_id: uuid.UUID, bus: Bus, who: Reader) -> PairingOut:
    """Staff end a pairing; it is never offered to that member again."""
    return bus.handle(RemovePairing(principal=who, pairing_id=pairing_id))


@router.post("/pairings/{pairing_id}/decline")
def decline_pairing(pairing_id: uuid.UUID, bus: Bus, who: Reader) -> PairingOut:
    """The member declines; the next run pairs them elsewhere, never with this again."""
    return bus.handle(DeclinePairing(principal=who, pairing_id=pairing_id))
