"""Pages of a unit's organiser (单位组织员): the overview, the roster (花名册) upload and its
progress, and the unit's members with their five ones (exportable as xlsx).

Members come from pairing (``GET /units/{code}/progress``: ids and the five ones); their
names in full and masked phones from registration (``GET /directory/units/{code}/members``:
the organiser manages them and must know whom to chase), one call per page. A member
registration no longer lists (withdrawn meanwhile) keeps reporting's masked name.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Path, Request, UploadFile
from fastapi.responses import Response

from services.web import labels, pages, sheets
from services.web.client import Api, ApiError
from services.web.pages import ApiDep, Checked, Person

router = APIRouter()
Organiser = Annotated[Person, Depends(pages.role("unit"))]
RosterId = Annotated[str, Path(pattern=r"^[0-9a-fA-F-]{36}$")]
PAGE = 20
BEHIND_SHOWN = 5
#: The export's last columns, after the five ones.
TAIL = ["全部完成", "服务时长（小时）", "未完成"]
#: Most members a download holds (pairing's page is at most 1,000).
EXPORT_MAX = 20_000

FIELD_NAMES = {
    **labels.FIELDS,
    "id_number": "身份证号",
    "is_leader_cadre": "是否县处级以上领导干部",
    "residence_community_code": "居住社区代码",
    "row": "整行",
}
#: Messages of a roster's rows (beyond the registration form's, in ``labels``).
ROSTER_MESSAGES: list[tuple[str, str]] = [
    (
        r"15 digits|format as text",
        "身份证号被Excel存成了数字（只剩15位），请把该列设为“文本”后重新填写",
    ),
    (r"kept as own words: ?(?P<words>.*)", "专长「{words}」不在专长列表中，已作为“其他专长”保存"),
    (r"no .*\((?P<field>\w+)\) column", "表格缺少这一列，请使用空白模板"),
    (r"twice", "表头中这一列出现了两次"),
    (r"是/否|yes/no|true/false", "请填写“是”或“否”"),
]


def roster_message(field: str, message: str) -> str:
    """A roster row's problem said in Chinese (the registration form's table, then ours)."""
    for pattern, chinese in ROSTER_MESSAGES:
        found = re.search(pattern, message, re.IGNORECASE)
        if found:
            return chinese.format(**{k: v or "" for k, v in found.groupdict().items()})
    return labels.field_message(field, message)


def problems(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "row": r.get("row"),
            "field": FIELD_NAMES.get(str(r.get("field")), str(r.get("field") or "")),
            "message": roster_message(str(r.get("field") or ""), str(r.get("message") or "")),
        }
        for r in rows
    ]


async def listed(api: Api, path: str, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """A paged list and its ``X-Total-Count``."""
    clean = {k: v for k, v in params.items() if v is not None}
    answer = await api.send("GET", path, params=clean)
    rows: list[dict[str, Any]] = answer.json()
    return rows, int(answer.headers.get("x-total-count", len(rows)))


async def named(api: Api, code: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` with each member's name and masked phone (registration), in one call; those
    registration does not list (withdrawn) with reporting's masked name, in one more."""
    if not rows:
        return rows
    ids = [r["member_id"] for r in rows]
    found = await api.get(f"/directory/units/{code}/members", member_id=ids, limit=len(ids))
    people = {m["id"]: m for m in found}
    missing = [i for i in ids if i not in people]
    if missing:
        people |= {i: {"name": n} for i, n in (await masked(api, code, missing)).items()}
    return [
        {
            **r,
            "name": people.get(r["member_id"], {}).get("name") or "（姓名待同步）",
            "phone": people.get(r["member_id"], {}).get("phone") or "",
        }
        for r in rows
    ]


async def masked(api: Api, code: str, ids: list[str]) -> dict[str, str]:
    """Reporting's masked names (张*) of ``ids``: for members registration no longer lists."""
    try:
        found = await api.get("/summary/members", scope=f"unit:{code}", member_id=ids)
    except ApiError as exc:
        if exc.status != 404:
            raise
        return {}
    return {m["member_id"]: m.get("name") or "" for m in found}


async def unit_name(api: Api, code: str) -> str:
    units = await api.get("/directory/units", q=code, limit=5)
    return next((str(u["name"]) for u in units if u.get("code") == code), code)


# --- overview ----------------------------------------------------------------------------


@router.get("/unit")
async def overview(request: Request, api: ApiDep, person: Organiser) -> Response:
    code = person.code
    name = await unit_name(api, code)
    _, members = await listed(api, f"/units/{code}/progress", limit=1)
    behind, late = await listed(
        api, f"/units/{code}/progress", complete="false", limit=BEHIND_SHOWN
    )
    context = {
        "unit": {"code": code, "name": name},
        "members": members,
        "complete": members - late,
        "late": late,
        "behind": await named(api, code, behind),
        "kinds": labels.STATES["five_ones"],
    }
    return pages.render(request, "unit/overview.html", context)


# --- roster ------------------------------------------------------------------------------


@router.get("/unit/roster")
async def roster_form(request: Request, person: Organiser) -> Response:
    return pages.render(request, "unit/roster.html", {"errors": {}})


@router.post("/unit/roster", dependencies=[Checked])
async def roster_upload(
    request: Request,
    api: ApiDep,
    person: Organiser,
    file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    errors: dict[str, str] = {}
    data = await file.read() if file is not None else b""
    if file is None or not file.filename or not data:
        errors["file"] = "请选择填好的花名册（xlsx、xls 或 csv）"
        return pages.render(request, "unit/roster.html", {"errors": errors}, 422)
    try:
        answer = await api.post(
            "/rosters",
            None,
            files={"file": (file.filename, data, file.content_type or "application/octet-stream")},
            data={"unit_code": person.code},
        )
    except ApiError as exc:
        if exc.status not in (422, 503):
            raise
        if exc.status == 503:
            errors["file"] = "暂时无法导入，请稍后重新上传"
        else:
            found = [e for e in exc.errors if e.get("field") == "file"] or exc.errors
            message = str(found[0].get("message") or "") if found else ""
            errors["file"] = (
                "文件太大（最多50MB）"
                if "large" in message or "MB" in message
                else f"无法读取这个文件：{roster_message('file', message)}"
                if message
                else "无法读取这个文件，请使用空白模板填写"
            )
        return pages.render(request, "unit/roster.html", {"errors": errors}, exc.status)
    return pages.go(f"/unit/roster/{answer['id']}", request)


def _roster_context(roster: dict[str, Any]) -> dict[str, Any]:
    return {
        "roster": roster,
        "running": roster.get("status") == "running",
        "errors": problems(roster.get("errors") or []),
        "notes": problems(roster.get("notes") or []),
    }


@router.get("/unit/roster/template.xlsx")
async def roster_template(api: ApiDep, person: Organiser) -> Response:
    answer = await api.send("GET", "/rosters/template.xlsx")
    return _download(answer.content, "花名册模板.xlsx")


@router.get("/unit/roster/{roster_id}")
async def roster_page(
    request: Request, api: ApiDep, person: Organiser, roster_id: RosterId
) -> Response:
    roster = await api.get(f"/rosters/{roster_id}")
    return pages.render(request, "unit/roster_status.html", _roster_context(roster))


@router.get("/unit/roster/{roster_id}/status")
async def roster_status(
    request: Request, api: ApiDep, person: Organiser, roster_id: RosterId
) -> Response:
    """The progress fragment htmx polls every second; done or failed, it stops polling."""
    roster = await api.get(f"/rosters/{roster_id}")
    return pages.render(request, "unit/_roster_progress.html", _roster_context(roster))


@router.get("/unit/roster/{roster_id}/errors.xlsx")
async def roster_errors(api: ApiDep, person: Organiser, roster_id: RosterId) -> Response:
    answer = await api.send("GET", f"/rosters/{roster_id}/errors.xlsx")
    return _download(answer.content, "花名册错误行.xlsx")


def _download(content: bytes, filename: str) -> Response:
    disposition = f"attachment; filename=\"download.xlsx\"; filename*=UTF-8''{quote(filename)}"
    return Response(content, media_type=sheets.XLSX, headers={"Content-Disposition": disposition})


# --- members -----------------------------------------------------------------------------


@router.get("/unit/members")
async def members(
    request: Request, api: ApiDep, person: Organiser, page: int = 1, behind: bool = False
) -> Response:
    code = person.code
    page = max(1, min(page, 50_000))
    rows, total = await listed(
        api,
        f"/units/{code}/progress",
        complete="false" if behind else None,
        limit=PAGE,
        offset=(page - 1) * PAGE,
    )
    context = {
        "rows": await named(api, code, rows),
        "total": total,
        "page": page,
        "pages": max(1, math.ceil(total / PAGE)),
        "behind": behind,
        "kinds": labels.STATES["five_ones"],
    }
    return pages.render(request, "unit/members.html", context)


@router.get("/unit/members.xlsx")
async def members_export(api: ApiDep, person: Organiser) -> Response:
    """Every member of the unit and their five ones: a page of 1,000 per call, and the
    names and masked phones of the unit's members in one call per 1,000."""
    code = person.code
    rows: list[dict[str, Any]] = []
    while len(rows) < EXPORT_MAX:
        batch, total = await listed(api, f"/units/{code}/progress", limit=1000, offset=len(rows))
        rows += batch
        if not batch or len(rows) >= total:
            break
    people: dict[str, dict[str, Any]] = {}
    while True:
        found, total = await listed(
            api, f"/directory/units/{code}/members", limit=1000, offset=len(people)
        )
        people.update({m["id"]: m for m in found})
        if not found or len(people) >= total or len(people) >= EXPORT_MAX:
            break
    missing = [r["member_id"] for r in rows if r["member_id"] not in people]
    if missing:
        gone = await masked(api, code, missing[:200])
        people |= {i: {"name": n} for i, n in gone.items()}
    kinds = labels.STATES["five_ones"]
    headers = ["序号", "姓名", "手机号", "领导干部", "已报到", *kinds.values(), *TAIL]
    body = (
        [
            n,
            people.get(row["member_id"], {}).get("name") or "",
            people.get(row["member_id"], {}).get("phone") or "",
            "是" if row.get("is_leader_cadre") else "否",
            "是" if row.get("reported_in") else "否",
            *("✓" if row.get(kind) else "" for kind in kinds),
            "是" if row.get("complete") else "否",
            row.get("hours") or 0,
            "、".join(kinds.get(k, k) for k in row.get("missing") or []),
        ]
        for n, row in enumerate(rows, start=1)
    )
    return await sheets.download(f"党员五个一_{code}.xlsx", [("五个一完成情况", headers, body)])
