"""双对接 over HTTP: community staff publish targets, needs, projects and teams (one by one or
from a spreadsheet); pairing runs, a member's pairings, the community report, staff
overrides and a member's decline. Routes check who is calling and call a use case."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Path, UploadFile
from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from sqlalchemy import select

from services.pairing import needs, pairing_views, pairings, runtime
from services.pairing.models import CommunityReplica, Need, Pairing, Project, ServiceTarget, Team
from shared.auth import Forbidden, Principal, requires
from shared.db import UnitOfWork
from shared.http import Invalid, NotFound
from shared.runtime import Runtime

router = APIRouter(tags=["pairing"])  # api.py's router adds the /api/v1 prefix
Rt = Annotated[Runtime, Depends(runtime)]
Staff = Annotated[Principal, Depends(requires(runtime, "admin", "operator", "community"))]
Reader = Annotated[
    Principal, Depends(requires(runtime, "admin", "operator", "community", "member"))
]
Code = Annotated[str, Path(pattern=r"^\d{12}$")]
MAX_BYTES = 10 * 1024 * 1024
_IN = ConfigDict(extra="forbid", str_strip_whitespace=True)


class TargetIn(BaseModel):
    model_config = _IN
    category: str = Field(max_length=30)
    label: str = Field(max_length=60, description="the resident's name; stored masked (张*)")
    consent: bool = False


class NeedIn(BaseModel):
    model_config = _IN
    title: str = Field(max_length=200)
    required_skill: str | None = Field(default=None, max_length=40)
    category: str | None = Field(default=None, max_length=30)
    volunteers_needed: int = 1
    availability: list[str] = Field(default=[], max_length=3)
    window_start: date | None = None
    window_end: date | None = None
    target_id: uuid.UUID | None = None


class ProjectIn(BaseModel):
    model_config = _IN
    kind: str = Field(max_length=30)
    title: str = Field(max_length=200)
    required_skill: str | None = Field(default=None, max_length=40)
    schedule: str | None = Field(default=None, max_length=200)
    availability: list[str] = Field(default=[], max_length=3)
    capacity: int = 10


class TeamIn(BaseModel):
    model_config = _IN
    name: str = Field(max_length=100)
    speciality: str | None = Field(default=None, max_length=40)
    leader_member_id: uuid.UUID | None = Field(
        default=None, validation_alias=AliasChoices("leader_member_id", "leader")
    )


class RunIn(BaseModel):
    model_config = _IN
    scope: str = Field(max_length=40, description="community:CODE, district:CODE or city")


class PairIn(BaseModel):
    model_config = _IN
    member_id: uuid.UUID
    need_id: uuid.UUID | None = None
    project_id: uuid.UUID | None = None


def _community(uow: UnitOfWork, code: str, who: Principal) -> CommunityReplica:
    """The community, or 404 when unknown, closed or outside the caller's scope."""
    community = uow.session.get(CommunityReplica, code)
    today = pairings.campaign_day(uow)
    if (
        community is None
        or (community.valid_to is not None and community.valid_to < today)
        or not who.covers(districts={code[:6]}, communities={code})
    ):
        raise NotFound(f"no community {code}")
    return community


# --- views ------------------------------------------------------------------------------------


def _common(row: Need | Project | ServiceTarget | Team) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "community_code": row.community_code,
        "created_at": row.created_at.isoformat(),
    }


def target_view(t: ServiceTarget) -> dict[str, Any]:
    shown = {"category": t.category, "label": t.label, "sensitive": t.sensitive}
    return _common(t) | shown | {"consent": t.consent}


def need_view(n: Need, paired: int = 0) -> dict[str, Any]:
    fields = ("state", "title", "required_skill", "category", "volunteers_needed", "availability")
    return (
        _common(n)
        | {f: getattr(n, f) for f in fields}
        | {
            "window_start": n.window_start.isoformat() if n.window_start else None,
            "window_end": n.window_end.isoformat() if n.window_end else None,
            "target_id": str(n.target_id) if n.target_id else None,
            "paired": paired,
            "open_places": max(0, n.volunteers_needed - paired),
        }
    )


def project_view(p: Project, paired: int = 0) -> dict[str, Any]:
    fields = ("state", "kind", "title", "required_skill", "schedule", "availability", "capacity")
    extra = {"paired": paired, "open_places": max(0, p.capacity - paired)}
    return _common(p) | {f: getattr(p, f) for f in fields} | extra


def team_view(t: Team) -> dict[str, Any]:
    leader = str(t.leader_member_id) if t.leader_member_id else None
    return _common(t) | {"name": t.name, "speciality": t.speciality, "leader_member_id": leader}


# --- publishing -------------------------------------------------------------------------------


@router.post("/communities/{code}/targets", status_code=201)
def publish_target(code: Code, body: TargetIn, rt: Rt, who: Staff) -> dict[str, Any]:
    """服务对象 — a resident in need, stored masked; sensitive categories need consent."""
    with rt.uow() as uow:
        _community(uow, code, who)
        target = needs.publish_target(uow, code, body.model_dump())
        uow.commit()
        return target_view(target)


@router.post("/communities/{code}/needs", status_code=201)
def publish_need(code: Code, body: NeedIn, rt: Rt, who: Staff) -> dict[str, Any]:
    """需求清单 — an item of the needs list; the community is paired again at once."""
    with rt.uow() as uow:
        _community(uow, code, who)
        need = needs.publish_need(uow, code, body.model_dump())
        uow.commit()
    pairings.run_after_publishing(rt, code)
    return need_view(need)


@router.post("/communities/{code}/projects", status_code=201)
def publish_project(code: Code, body: ProjectIn, rt: Rt, who: Staff) -> dict[str, Any]:
    """服务项目 — 文明创建, 治安巡逻, 环境卫生 …; the community is paired again at once."""
    with rt.uow() as uow:
        _community(uow, code, who)
        project = needs.publish_project(uow, code, body.model_dump())
        uow.commit()
    pairings.run_after_publishing(rt, code)
    return project_view(project)


@router.post("/communities/{code}/teams", status_code=201)
def publish_team(code: Code, body: TeamIn, rt: Rt, who: Staff) -> dict[str, Any]:
    with rt.uow() as uow:
        _community(uow, code, who)
        team = needs.publish_team(uow, code, body.model_dump())
        uow.commit()
        return team_view(team)


def _upload(code: str, what: str, file: UploadFile, rt: Runtime, who: Principal) -> Any:
    data = file.file.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise Invalid("the file is too large", [{"field": "file", "message": "at most 10 MB"}])
    with rt.read() as uow:  # a write session would hold SQLite's lock while the file is read
        _community(uow, code, who)
    with rt.uow() as uow:
        summary = needs.upload(uow, code, what, data)  # commits chunk by chunk
    if not summary["accepted"]:  # then nothing was written
        raise Invalid("no row could be published", summary["errors"])
    pairings.run_after_publishing(rt, code)
    return summary


Sheet = Annotated[UploadFile, File(description="xlsx, or CSV in UTF-8 or GBK")]


@router.post("/communities/{code}/needs/upload", status_code=201)
def upload_needs(code: Code, file: Sheet, rt: Rt, who: Staff) -> dict[str, Any]:
    """Publish a needs list from a spreadsheet: good rows land, bad ones come back by row."""
    result: dict[str, Any] = _upload(code, "needs", file, rt, who)
    return result


@router.post("/communities/{code}/projects/upload", status_code=201)
def upload_projects(code: Code, file: Sheet, rt: Rt, who: Staff) -> dict[str, Any]:
    result: dict[str, Any] = _upload(code, "projects", file, rt, who)
    return result


@router.get("/communities/{code}/targets")
def list_targets(code: Code, rt: Rt, who: Staff) -> list[dict[str, Any]]:
    with rt.read() as uow:
        _community(uow, code, who)
        query = select(ServiceTarget).where(ServiceTarget.community_code == code)
        return [
            target_view(t) for t in uow.session.scalars(query.order_by(ServiceTarget.created_at))
        ]


@router.get("/communities/{code}/needs")
def list_needs(code: Code, rt: Rt, who: Staff) -> list[dict[str, Any]]:
    with rt.read() as uow:
        _community(uow, code, who)
        paired = needs.paired_counts(uow, Pairing.need_id, code)
        query = select(Need).where(Need.community_code == code).order_by(Need.created_at)
        return [need_view(n, paired.get(n.id, 0)) for n in uow.session.scalars(query)]


@router.get("/communities/{code}/projects")
def list_projects(code: Code, rt: Rt, who: Staff) -> list[dict[str, Any]]:
    with rt.read() as uow:
        _community(uow, code, who)
        paired = needs.paired_counts(uow, Pairing.project_id, code)
        query = select(Project).where(Project.community_code == code).order_by(Project.created_at)
        return [project_view(p, paired.get(p.id, 0)) for p in uow.session.scalars(query)]


@router.get("/communities/{code}/teams")
def list_teams(code: Code, rt: Rt, who: Staff) -> list[dict[str, Any]]:
    with rt.read() as uow:
        _community(uow, code, who)
        query = select(Team).where(Team.community_code == code).order_by(Team.created_at)
        return [team_view(t) for t in uow.session.scalars(query)]


# --- pairing ----------------------------------------------------------------------------------


@router.post("/pairings/run")
def run_pairing(body: RunIn, rt: Rt, who: Staff) -> dict[str, Any]:
    """Pair the members of a scope (community, district, city): only adds pairings."""
    scope = pairings.Scope.parse(body.scope)
    if not scope.allows(who):
        raise NotFound(f"no scope {scope}")
    with rt.uow() as uow:
        summary = pairings.run(uow, scope, pairings.limits_from(rt.settings))
        uow.commit()
    return summary


@router.get("/members/{member_id}/pairings")
def member_pairings(member_id: uuid.UUID, rt: Rt, who: Reader) -> dict[str, Any]:
    with rt.read() as uow:
        return pairing_views.member_pairings(uow, member_id, who)


@router.get("/communities/{code}/pairing-report")
def pairing_report(code: Code, rt: Rt, who: Staff) -> dict[str, Any]:
    """Who is not yet 双对接 and why; which needs and projects have open places and why."""
    with rt.read() as uow:
        _community(uow, code, who)
        return pairing_views.community_report(uow, code, pairings.limits_from(rt.settings))


@router.post("/pairings", status_code=201)
def pair_by_staff(body: PairIn, rt: Rt, who: Staff) -> dict[str, Any]:
    """A staff override: pair a member confirmed here with a need or a project."""
    if (body.need_id is None) == (body.project_id is None):
        message = "give need_id or project_id, not both"
        raise Invalid("what to pair with?", [{"field": "need_id", "message": message}])
    kind, subject_id = ("need", body.need_id) if body.need_id else ("project", body.project_id)
    assert subject_id is not None
    with rt.uow() as uow:
        slot = pairing_views.subject(uow, kind, subject_id, who)
        made = pairing_views.pair_by_staff(uow, body.member_id, slot)
        uow.commit()
        return pairing_views.pairing_view(made)


@router.delete("/pairings/{pairing_id}")
def remove_pairing(pairing_id: uuid.UUID, rt: Rt, who: Reader) -> dict[str, Any]:
    """Staff end a pairing; it is never offered to that member again."""
    return _end(rt, pairing_id, who, "removed", ("admin", "operator", "community"))


@router.post("/pairings/{pairing_id}/decline")
def decline_pairing(pairing_id: uuid.UUID, rt: Rt, who: Reader) -> dict[str, Any]:
    """The member declines; the next run pairs them elsewhere, never with this again."""
    return _end(rt, pairing_id, who, "declined", ("admin", "member"))


def _end(
    rt: Runtime, pairing_id: uuid.UUID, who: Principal, state: str, roles: tuple[str, ...]
) -> dict[str, Any]:
    with rt.uow() as uow:
        found = pairing_views.pairing(uow, pairing_id, who)
        if who.role not in roles:
            raise Forbidden(f"a {who.role} token may not do this")
        pairings.end(uow, found, state)
        uow.commit()
        return pairing_views.pairing_view(found)
