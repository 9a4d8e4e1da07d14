"""Pages of the community worker (社区工作人员): today's work first (reports-in to confirm,
wishes to review and confirm, records to verify), publishing targets, needs, projects and
teams, the pairing report and run, and the QR poster to print.

Everything goes through the public API with the worker's token; the worker's community is
the session's scope (``person.code``). Lists are also downloads (``?format=xlsx``).
"""

from __future__ import annotations

import asyncio
import io
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.worksheet.datavalidation import DataValidation
from starlette.datastructures import UploadFile

from services.web import labels, pages, posters, sheets
from services.web.client import Api, ApiError
from services.web.pages import ApiDep, Checked, Person
from services.web.vocabulary import vocabulary

router = APIRouter()
Worker = Annotated[Person, Depends(pages.role("community"))]

# --- what the forms offer -----------------------------------------------------------------

#: 受益人类别 as other programs send them (pairing keeps the text it is given), in Chinese;
#: anything else is shown as it came.
BENEFICIARIES = {
    "elderly": "空巢老人",
    "empty_nest_elderly": "空巢老人",
    "left_behind_children": "留守儿童",
    "children": "留守儿童",
    "disabled": "残障人士",
    "hardship": "困难党员和群众",
    "needy": "困难党员和群众",
    "laid_off": "下岗职工",
    "unemployed": "下岗职工",
    "migrant_workers": "外来务工人员及随迁子女",
    "migrant": "外来务工人员及随迁子女",
    "other": "其他",
}


def beneficiary(value: Any) -> str:
    """A wish's 受益人类别 in Chinese (the raw text when it is not a known code)."""
    text = str(value or "").strip()
    return BENEFICIARIES.get(text.lower(), text)


#: Spreadsheet headers, as docs/contract.md "Needs list and projects list" names them.
NEED_HEADERS = ("标题", "所需专长", "服务对象类别", "所需人数", "服务时间", "开始日期", "结束日期")
PROJECT_HEADERS = ("项目类型", "项目名称", "所需专长", "时间安排", "服务时间", "人数上限")
UPLOAD_BYTES = 10 * 1024 * 1024

#: Why a member is not dual-paired, why a place is open (pairing-report reasons).
REASONS = {
    "not_confirmed": "尚未在本社区报到确认",
    "no_capacity": "本社区的需求和项目已没有空余名额",
    "no_matching_skill": "专长或时间与现有需求/项目不匹配",
    "awaiting_run": "可对接，点“开始自动对接”即可",
    "no_confirmed_member": "本社区还没有已报到的党员",
    "members_at_load_cap": "合适的党员对接已满",
}
MISSING = {"need": "需求", "project": "项目"}


# --- small helpers -------------------------------------------------------------------------


def categories(vocab: dict[str, Any]) -> list[str]:
    """服务对象 categories, as the vocabulary gives them."""
    return [str(c["value"]) for c in vocab["target_categories"]]


async def listed(api: Api, path: str, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """A list and how many match in all (``X-Total-Count``, else its length)."""
    clean = {k: v for k, v in params.items() if v is not None}
    answer = await api.send("GET", path, params=clean)
    rows: list[dict[str, Any]] = answer.json()
    total = answer.headers.get("x-total-count", "")
    return rows, int(total) if total.isdigit() else len(rows)


async def count(api: Api, path: str, **params: Any) -> int:
    return (await listed(api, path, limit=1, **params))[1]


async def names(api: Api, code: str) -> dict[str, str]:
    """member_id → name for every member registered in the community (one call)."""
    rows = await api.get("/registrations", community_code=code, limit=1000)
    return {r["member_id"]: r.get("name") or "（已注销）" for r in rows if r.get("member_id")}


def flash(request: Request) -> str | None:
    value = request.session.pop("flash", None)
    return str(value) if value else None


def done(request: Request, url: str, message: str) -> Response:
    request.session["flash"] = message
    return pages.go(url, request)


def htmx(request: Request) -> bool:
    return bool(request.headers.get("hx-request"))


def errors_of(exc: ApiError) -> dict[str, str]:
    """The API's field errors in Chinese; a refusal without any goes above the form."""
    return pages.field_errors(exc) or {"form": pages.refusal(exc)}


def stamp() -> str:
    return datetime.now(labels.TZ).strftime("%Y%m%d")


def when(record: dict[str, Any]) -> str:
    if record.get("start_time") and record.get("end_time"):
        return f"{record['start_time']}–{record['end_time']}"
    return ""


# --- 1. today ------------------------------------------------------------------------------


@router.get("/community")
async def today(request: Request, api: ApiDep, me: Worker) -> Response:
    """今日: what waits for the worker, each count a link to its list (6 calls at once)."""
    code = me.code
    community, reports, collected, pending, fulfilled, records = await asyncio.gather(
        api.get(f"/directory/communities/{code}"),
        count(api, "/registrations", community_code=code, state="submitted"),
        count(api, "/wishes", community_code=code, state="collected"),
        count(api, "/wishes", community_code=code, state="pending_review"),
        count(api, "/wishes", community_code=code, state="fulfilled"),
        count(api, "/activities", community_code=code, state="submitted"),
    )
    context = {
        "community": community,
        "reports": reports,
        "review": collected + pending,
        "fulfilled": fulfilled,
        "records": records,
        "flash": flash(request),
    }
    return pages.render(request, "community/today.html", context)


# --- 2. reports-in -------------------------------------------------------------------------


@router.get("/community/reports")
async def reports(request: Request, api: ApiDep, me: Worker, format: str = "") -> Response:
    """报到确认: the reports-in waiting, who each is for (1 call)."""
    rows, total = await listed(
        api, "/registrations", community_code=me.code, state="submitted", limit=500
    )
    if format == "xlsx":
        return await sheets.download(
            f"待确认报到_{me.code}_{stamp()}.xlsx",
            [
                (
                    "待确认报到",
                    ("姓名", "手机号", "工作单位", "报到类型", "状态"),
                    (
                        (
                            r.get("name"),
                            r.get("phone"),
                            r.get("unit_name") or r.get("unit_code"),
                            labels.label(r["role"], "registration_role"),
                            labels.label(r["state"], "registration"),
                        )
                        for r in rows
                    ),
                )
            ],
        )
    context = {"rows": rows, "total": total, "flash": flash(request), "errors": {}}
    return pages.render(request, "community/reports.html", context)


@router.post("/community/reports/confirm", dependencies=[Checked])
async def confirm_reports(request: Request, api: ApiDep, me: Worker) -> Response:
    """全部确认: the ids the worker saw on the list."""
    form = await request.form()
    ids = [str(v) for v in form.getlist("ids") if isinstance(v, str) and v][:5000]
    if not ids:
        return done(request, "/community/reports", "没有需要确认的报到")
    answer = await api.post("/registrations/confirm", {"ids": ids})
    refused = len(answer.get("refused") or [])
    message = f"已确认 {answer['confirmed']} 人报到"
    if refused:
        message += f"；{refused} 条已被处理或无法确认"
    return done(request, "/community/reports", message)


@router.post("/community/reports/{registration_id}/confirm", dependencies=[Checked])
async def confirm_report(
    request: Request, api: ApiDep, me: Worker, registration_id: str
) -> Response:
    """确认一条: with htmx only that row is replaced (1 call)."""
    return await act(
        request, api, f"/registrations/{registration_id}/confirm", None, "已确认报到",
        anchor=f"reg-{registration_id}", back="/community/reports",
        shown=await shown_in_row(request),
    )  # fmt: skip


async def shown_in_row(request: Request) -> str:
    """Whom a row was for, as the row showed it (field ``shown``): the API's answer to a
    report-in's confirm or reject does not name the member."""
    form = await request.form()
    return str(form.get("shown") or "").strip()[:30]


@router.post("/community/reports/{registration_id}/reject", dependencies=[Checked])
async def reject_report(
    request: Request, api: ApiDep, me: Worker, registration_id: str
) -> Response:
    """退回 with a reason (1 call); no reason: the error beside the field (no call with htmx)."""
    form = await request.form()
    reason = str(form.get("reason") or "").strip()
    if reason and len(reason) <= 500:
        return await act(
            request, api, f"/registrations/{registration_id}/reject", {"reason": reason}, "已退回",
            anchor=f"reg-{registration_id}", back="/community/reports",
            shown=await shown_in_row(request),
        )  # fmt: skip
    error = "原因最多500个字" if reason else "请填写退回原因"
    if htmx(request):
        return reason_form(
            request, f"/community/reports/{registration_id}/reject", registration_id, error,
            reason, "退回原因", "退回", {"shown": await shown_in_row(request)},
        )  # fmt: skip
    rows, total = await listed(
        api, "/registrations", community_code=me.code, state="submitted", limit=500
    )
    context = {"rows": rows, "total": total, "errors": {registration_id: error}, "reason": reason}
    return pages.render(request, "community/reports.html", context, 422)


async def act(
    request: Request,
    api: Api,
    path: str,
    body: Any,
    message: str,
    *,
    anchor: str,
    back: str,
    shown: str = "",
) -> Response:
    """One POST to the API for a row of a list: with htmx, the row becomes what happened
    (a 409 says the row was dealt with meanwhile); without, back to the list with a flash."""
    try:
        row = await api.post(path, body)
    except ApiError as exc:
        if exc.status != 409 or not htmx(request):
            raise
        context = {"row": {}, "message": pages.refusal(exc), "failed": True, "anchor": anchor}
    else:
        shown = str(row.get("title") or row.get("name") or _record_label(row) or shown)
        if not htmx(request):
            return done(request, back, f"{shown}{'：' if shown else ''}{message}")
        context = {"row": {"name": shown}, "message": message, "anchor": anchor}
    # A reason form posts with itself as the target: the whole row is what changes.
    headers = {"HX-Retarget": f"#{anchor}", "HX-Reswap": "outerHTML"}
    return pages.render(request, "community/_done.html", context, headers=headers)


def _record_label(row: dict[str, Any]) -> str:
    """A service record said in a few words: 民情家访 7月4日 2小时."""
    if "kind" not in row or "date" not in row:
        return ""
    kind = labels.label(row["kind"], "five_ones")
    return f"{kind} {labels.day(row['date'])} {labels.hours(row.get('hours'))}"


def reason_form(
    request: Request,
    action: str,
    key: str,
    error: str,
    reason: str,
    label: str,
    button: str,
    hidden: dict[str, str] | None = None,
) -> Response:
    """The reason form alone, with its error (htmx swaps 2xx answers only)."""
    context = {
        "action": action,
        "key": key,
        "target": "",
        "errors": {key: error},
        "reason": reason,
        "label": label,
        "button": button,
        "hidden": hidden or {},
    }
    return pages.render(request, "community/_reason_form.html", context)


# --- 3. wishes -----------------------------------------------------------------------------


WISH_HEADERS = (
    "标题",
    "说明",
    "类别",
    "受益人类别",
    "截止日期",
    "状态",
    "认领党员",
    "原因",
    "评分",
)


@router.get("/community/wishes")
async def wish_lists(request: Request, api: ApiDep, me: Worker, format: str = "") -> Response:
    """微心愿: to review, to confirm, to rate; a form for a new one (5 calls at once)."""
    code = me.code
    if format == "xlsx":
        everything, who = await asyncio.gather(
            api.get("/wishes", community_code=code, limit=500), names(api, code)
        )
        return await sheets.download(
            f"微心愿_{code}_{stamp()}.xlsx",
            [("微心愿", WISH_HEADERS, (wish_row(w, who) for w in everything))],
        )
    return await wishes_page(request, api, me)


def wish_row(w: dict[str, Any], who: dict[str, str]) -> list[Any]:
    claimer = (w.get("claim") or {}).get("member_id")
    return [
        w["title"],
        w.get("description"),
        w.get("category"),
        beneficiary(w.get("beneficiary_category")),
        w.get("deadline"),
        labels.label(w["state"], "wish"),
        who.get(claimer, "") if claimer else "",
        w.get("reason"),
        w.get("rating"),
    ]


async def wishes_page(
    request: Request,
    api: Api,
    me: Person,
    errors: dict[str, str] | None = None,
    entered: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    code = me.code
    collected, pending, fulfilled, confirmed, who, vocab = await asyncio.gather(
        api.get("/wishes", community_code=code, state="collected", limit=200),
        api.get("/wishes", community_code=code, state="pending_review", limit=200),
        api.get("/wishes", community_code=code, state="fulfilled", limit=200),
        api.get("/wishes", community_code=code, state="confirmed", limit=100),
        names(api, code),
        vocabulary(api),
    )
    context = {
        "review": pending + collected,
        "fulfilled": fulfilled,
        "confirmed": confirmed,
        "who": who,
        "beneficiary": beneficiary,
        "skills": vocab["skills"],
        "categories": categories(vocab),
        "errors": errors or {},
        "entered": entered or {},
        "flash": flash(request),
    }
    return pages.render(request, "community/wishes.html", context, status)


@router.post("/community/wishes", dependencies=[Checked])
async def new_wish(request: Request, api: ApiDep, me: Worker) -> Response:
    """A wish the worker enters herself: collected and published in one go (2 calls)."""
    form = await request.form()
    entered = {
        k: str(form.get(k) or "").strip()
        for k in ("title", "description", "category", "beneficiary_category", "deadline")
    }
    body: dict[str, Any] = {"community_code": me.code, "title": entered["title"]}
    body |= {k: v for k, v in entered.items() if v and k != "title"}
    errors: dict[str, str] = {}
    if not entered["title"]:
        errors["title"] = "请填写心愿内容"
    if not errors:
        try:
            wish = await api.post("/wishes", body)
        except ApiError as exc:
            if exc.status != 422:
                raise
            errors = errors_of(exc)
        else:
            try:
                await api.post(f"/wishes/{wish['id']}/publish")
            except ApiError as exc:
                message = "心愿已登记，但未能发布：" + pages.refusal(exc)
                return done(request, "/community/wishes#review", message)
            return done(request, "/community/wishes", f"已发布心愿「{wish['title']}」")
    return await wishes_page(request, api, me, errors, entered, 422)


async def wish_act(
    request: Request, api: Api, wish_id: str, action: str, body: Any, message: str
) -> Response:
    return await act(
        request, api, f"/wishes/{wish_id}/{action}", body, message,
        anchor=f"wish-{wish_id}", back="/community/wishes",
    )  # fmt: skip


@router.post("/community/wishes/{wish_id}/publish", dependencies=[Checked])
async def publish_wish(request: Request, api: ApiDep, me: Worker, wish_id: str) -> Response:
    return await wish_act(request, api, wish_id, "publish", None, "已发布")


@router.post("/community/wishes/{wish_id}/confirm", dependencies=[Checked])
async def confirm_wish(request: Request, api: ApiDep, me: Worker, wish_id: str) -> Response:
    return await wish_act(request, api, wish_id, "confirm", None, "已确认完成")


@router.post("/community/wishes/{wish_id}/evaluate", dependencies=[Checked])
async def evaluate_wish(request: Request, api: ApiDep, me: Worker, wish_id: str) -> Response:
    form = await request.form()
    rating = str(form.get("rating") or "")
    if rating not in {"1", "2", "3", "4", "5"}:
        return done(request, "/community/wishes#confirmed", "请选择1–5星评价")
    return await wish_act(
        request, api, wish_id, "evaluate", {"rating": int(rating)}, f"已评价 {rating} 星"
    )


@router.post("/community/wishes/{wish_id}/reject", dependencies=[Checked])
async def reject_wish(request: Request, api: ApiDep, me: Worker, wish_id: str) -> Response:
    """不通过, with a reason; a collected wish is sent to review first (the machine's way:
    2 calls), a reviewed one is rejected (1 call)."""
    form = await request.form()
    reason = str(form.get("reason") or "").strip()[:500]
    state = str(form.get("state") or "")
    if not reason:
        error = "请填写不通过的原因"
        if htmx(request):
            return reason_form(
                request, f"/community/wishes/{wish_id}/reject", wish_id, error, "",
                "不通过的原因", "不通过", {"state": state},
            )  # fmt: skip
        return await wishes_page(request, api, me, {wish_id: error}, status=422)
    if state == "collected":
        try:
            await api.post(f"/wishes/{wish_id}/submit")
        except ApiError as exc:
            if exc.status != 409:
                raise
    return await wish_act(request, api, wish_id, "reject", {"reason": reason}, "未通过")


# --- 4. records to verify ------------------------------------------------------------------


RECORD_HEADERS = ("党员", "类型", "日期", "时长（小时）", "时间", "说明", "状态")


@router.get("/community/records")
async def records(request: Request, api: ApiDep, me: Worker, format: str = "") -> Response:
    """待核实的服务记录 with who did them (2 calls at once)."""
    (rows, total), who = await asyncio.gather(
        listed(api, "/activities", community_code=me.code, state="submitted", limit=500),
        names(api, me.code),
    )
    if format == "xlsx":
        return await sheets.download(
            f"待核实记录_{me.code}_{stamp()}.xlsx",
            [
                (
                    "待核实记录",
                    RECORD_HEADERS,
                    (
                        (
                            who.get(r["member_id"], ""),
                            labels.label(r["kind"], "five_ones"),
                            r["date"],
                            r["hours"],
                            when(r),
                            r.get("note"),
                            labels.label(r["state"], "record"),
                        )
                        for r in rows
                    ),
                )
            ],
        )
    context = {"rows": rows, "total": total, "who": who, "errors": {}, "flash": flash(request)}
    return pages.render(request, "community/records.html", context)


@router.post("/community/records/{record_id}/verify", dependencies=[Checked])
async def verify_record(request: Request, api: ApiDep, me: Worker, record_id: str) -> Response:
    return await act(
        request, api, f"/activities/{record_id}/verify", None, "已核实",
        anchor=f"rec-{record_id}", back="/community/records",
    )  # fmt: skip


@router.post("/community/records/{record_id}/return", dependencies=[Checked])
async def return_record(request: Request, api: ApiDep, me: Worker, record_id: str) -> Response:
    form = await request.form()
    reason = str(form.get("reason") or "").strip()
    if reason and len(reason) <= 500:
        return await act(
            request, api, f"/activities/{record_id}/return", {"reason": reason}, "已退回",
            anchor=f"rec-{record_id}", back="/community/records",
        )  # fmt: skip
    error = "原因最多500个字" if reason else "请填写退回原因"
    if htmx(request):
        action = f"/community/records/{record_id}/return"
        return reason_form(request, action, record_id, error, reason, "退回原因", "退回")
    (rows, total), who = await asyncio.gather(
        listed(api, "/activities", community_code=me.code, state="submitted", limit=500),
        names(api, me.code),
    )
    context = {"rows": rows, "total": total, "who": who, "errors": {record_id: error}}
    context["reason"] = reason
    return pages.render(request, "community/records.html", context, 422)


# --- 5. publishing -------------------------------------------------------------------------

KINDS = {"targets": "服务对象", "needs": "需求清单", "projects": "服务项目", "teams": "服务团队"}


async def publish_page(
    request: Request,
    api: Api,
    me: Person,
    errors: dict[str, dict[str, str]] | None = None,
    entered: dict[str, Any] | None = None,
    upload: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    code = me.code
    vocab, targets, needs, projects, teams = await asyncio.gather(
        vocabulary(api),
        api.get(f"/communities/{code}/targets"),
        api.get(f"/communities/{code}/needs"),
        api.get(f"/communities/{code}/projects"),
        api.get(f"/communities/{code}/teams"),
    )
    context = {
        "skills": vocab["skills"],
        "availability": vocab["availability"],
        "categories": categories(vocab),
        "sensitive": [c["value"] for c in vocab["target_categories"] if c["sensitive"]],
        "kinds": vocab["project_kinds"],
        "targets": targets,
        "needs": needs,
        "projects": projects,
        "teams": teams,
        "errors": errors or {},
        "entered": entered or {},
        "upload": upload,
        "flash": flash(request),
    }
    return pages.render(request, "community/publish.html", context, status)


@router.get("/community/publish")
async def publish(request: Request, api: ApiDep, me: Worker) -> Response:
    """发布: forms and spreadsheets for targets, needs, projects and teams, and what is
    published already (4 calls at once; the vocabulary is kept an hour)."""
    return await publish_page(request, api, me)


def _number(raw: str) -> int | str:
    return int(raw) if raw.isdigit() else raw


@router.post("/community/publish/{kind}", dependencies=[Checked])
async def publish_one(request: Request, api: ApiDep, me: Worker, kind: str) -> Response:
    if kind not in KINDS:
        raise pages.PageRefused(404, "没有这个页面")
    form = await request.form()

    def text(name: str) -> str:
        return str(form.get(name) or "").strip()

    body: dict[str, Any]
    if kind == "targets":
        body = {"category": text("category"), "label": text("label")}
        body["consent"] = form.get("consent") == "yes"
    elif kind == "needs":
        body = {
            "title": text("title"),
            "availability": [str(a) for a in form.getlist("availability")],
        }
        for name in ("required_skill", "category", "window_start", "window_end", "target_id"):
            if text(name):
                body[name] = text(name)
        if text("volunteers_needed"):
            body["volunteers_needed"] = _number(text("volunteers_needed"))
    elif kind == "projects":
        body = {
            "kind": text("kind"),
            "title": text("title"),
            "availability": [str(a) for a in form.getlist("availability")],
        }
        for name in ("required_skill", "schedule"):
            if text(name):
                body[name] = text(name)
        if text("capacity"):
            body["capacity"] = _number(text("capacity"))
    else:
        body = {"name": text("name")}
        if text("speciality"):
            body["speciality"] = text("speciality")
    try:
        await api.post(f"/communities/{me.code}/{kind}", body)
    except ApiError as exc:
        if exc.status != 422:
            raise
        return await publish_page(
            request, api, me, {kind: errors_of(exc)}, {kind: body}, status=422
        )
    shown = body.get("title") or body.get("name") or body.get("category")
    return done(request, f"/community/publish#{kind}", f"已发布{KINDS[kind]}「{shown}」")


@router.post("/community/publish/{kind}/upload", dependencies=[Checked])
async def upload(request: Request, api: ApiDep, me: Worker, kind: str) -> Response:
    """One spreadsheet of needs or projects; rows with problems come back by row."""
    if kind not in ("needs", "projects"):
        raise pages.PageRefused(404, "没有这个页面")
    form = await request.form()
    sheet = form.get("file")
    problem: dict[str, Any] = {"kind": kind, "rows": [], "accepted": 0}
    if not isinstance(sheet, UploadFile) or not sheet.filename:
        problem["error"] = "请选择要上传的文件"
        return await publish_page(request, api, me, upload=problem, status=422)
    data = await sheet.read(UPLOAD_BYTES + 1)
    if len(data) > UPLOAD_BYTES:
        problem["error"] = "文件太大（最大10MB）"
        return await publish_page(request, api, me, upload=problem, status=422)
    files = {"file": (sheet.filename, data, sheet.content_type or "application/octet-stream")}
    try:
        answer = (
            await api.send("POST", f"/communities/{me.code}/{kind}/upload", files=files)
        ).json()
    except ApiError as exc:
        if exc.status != 422:
            raise
        problem["rows"] = upload_rows(exc.errors)
        problem["error"] = "没有一行可以发布，请按下列提示修改后重新上传"
        return await publish_page(request, api, me, upload=problem, status=422)
    if answer.get("errors"):
        problem |= {"accepted": answer["accepted"], "rows": upload_rows(answer["errors"])}
        return await publish_page(request, api, me, upload=problem)
    return done(
        request, f"/community/publish#{kind}", f"已发布 {answer['accepted']} 条{KINDS[kind]}"
    )


FIELD_NAMES = {
    "title": "标题/名称",
    "required_skill": "所需专长",
    "category": "服务对象类别",
    "volunteers_needed": "所需人数",
    "availability": "服务时间",
    "window_start": "开始日期",
    "window_end": "结束日期",
    "kind": "项目类型",
    "schedule": "时间安排",
    "capacity": "人数上限",
    "file": "文件",
}


def upload_rows(errors: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [
        {
            "row": str(e.get("row") or ""),
            "field": FIELD_NAMES.get(str(e.get("field") or ""), str(e.get("field") or "")),
            "message": labels.field_message(str(e.get("field") or ""), str(e.get("message") or "")),
        }
        for e in errors
    ]


@router.get("/community/publish/{kind}-template.xlsx")
async def template(request: Request, api: ApiDep, me: Worker, kind: str) -> Response:
    """The blank needs or projects list, with the choices on a second sheet and offered in
    the cells that take one."""
    if kind not in ("needs", "projects"):
        raise pages.PageRefused(404, "没有这个页面")
    vocab = await vocabulary(api)
    skills = list(vocab["skills"])
    times = [a["label"] for a in vocab["availability"]]
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "需求清单" if kind == "needs" else "服务项目"
    headers = NEED_HEADERS if kind == "needs" else PROJECT_HEADERS
    sheet.append(list(headers))
    for index, header in enumerate(headers, 1):
        cell = sheet.cell(1, index)
        cell.font = Font(bold=True)
        sheet.column_dimensions[cell.column_letter].width = max(12, len(header) * 2 + 6)
    sheet.freeze_panes = "A2"
    choices = book.create_sheet("填写说明")
    lists = {
        "所需专长": skills,
        "服务对象类别": categories(vocab),
        "项目类型": list(vocab["project_kinds"]),
        "服务时间": times,
    }
    notes = [
        "每行一条；标题（项目名称）必填。",
        "服务时间可填多个，用顿号分隔，如：工作日晚上、周末。",
        "日期格式：2016-07-01。所需人数、人数上限填整数。",
        "需求清单：所需专长和服务对象类别至少填一项。",
    ]
    for column, (name, values) in enumerate(lists.items(), 1):
        choices.cell(1, column, name).font = Font(bold=True)
        choices.column_dimensions[choices.cell(1, column).column_letter].width = 22
        for row, value in enumerate(values, 2):
            choices.cell(row, column, value)
        if name in headers and name != "服务时间":
            at = headers.index(name) + 1
            letter = choices.cell(1, column).column_letter
            rule = DataValidation(
                type="list",
                formula1=f"'填写说明'!${letter}$2:${letter}${len(values) + 1}",
                allow_blank=True,
            )
            sheet.add_data_validation(rule)
            target = sheet.cell(2, at).column_letter
            rule.add(f"{target}2:{target}1000")
    for line, note in enumerate(notes, 2):
        choices.cell(line, 6, note)
    choices.cell(1, 6, "说明").font = Font(bold=True)
    choices.column_dimensions["F"].width = 50
    for dated in ("开始日期", "结束日期"):
        if dated in headers:
            letter = sheet.cell(1, headers.index(dated) + 1).column_letter
            sheet.column_dimensions[letter].number_format = "@"  # a date typed stays text
    buffer = io.BytesIO()
    book.save(buffer)
    name = "需求清单模板.xlsx" if kind == "needs" else "服务项目模板.xlsx"
    return Response(
        buffer.getvalue(),
        media_type=sheets.XLSX,
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"},
    )


@router.get("/community/publish/{kind}.xlsx")
async def published_list(request: Request, api: ApiDep, me: Worker, kind: str) -> Response:
    """What the community published, as a spreadsheet (1 call)."""
    if kind not in KINDS:
        raise pages.PageRefused(404, "没有这个页面")
    rows = await api.get(f"/communities/{me.code}/{kind}")

    headers, columns = LIST_COLUMNS[kind]
    body = ([shown(row, column) for column in columns] for row in rows)
    return await sheets.download(
        f"{KINDS[kind]}_{me.code}_{stamp()}.xlsx", [(KINDS[kind], headers, body)]
    )


#: A published list's spreadsheet: Chinese headers and the fields under them.
LIST_COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "targets": (
        ("服务对象", "类别", "敏感类别", "已获同意"),
        ("label", "category", "sensitive", "consent"),
    ),
    "needs": (
        ("标题", "所需专长", "服务对象类别", "所需人数", "已对接", "空余", "服务时间", "开始日期",
         "结束日期"),
        ("title", "required_skill", "category", "volunteers_needed", "paired", "open_places",
         "availability", "window_start", "window_end"),
    ),
    "projects": (
        ("项目类型", "项目名称", "所需专长", "时间安排", "服务时间", "人数上限", "已对接", "空余"),
        ("kind", "title", "required_skill", "schedule", "availability", "capacity", "paired",
         "open_places"),
    ),
    "teams": (("团队名称", "专长"), ("name", "speciality")),
}  # fmt: skip


def shown(row: dict[str, Any], column: str) -> Any:
    value = row.get(column)
    if column == "availability":
        return "、".join(labels.label(v, "availability") for v in value or [])
    if isinstance(value, bool):
        return "是" if value else "否"
    return value


# --- 6. pairing ----------------------------------------------------------------------------


async def pairing_context(api: Api, code: str) -> dict[str, Any]:
    """The report, who is who, and what is published (4 calls at once). Members whose
    report-in here is not confirmed are apart from those confirmed but not yet paired; "no
    open place" where nothing of that kind was published says so."""
    report, who, needs, projects = await asyncio.gather(
        api.get(f"/communities/{code}/pairing-report"),
        names(api, code),
        api.get(f"/communities/{code}/needs"),
        api.get(f"/communities/{code}/projects"),
    )
    published = {"need": bool(needs), "project": bool(projects)}

    def why(kind: str, reason: str) -> str:
        if reason == "no_capacity" and not published.get(kind, True):
            return f"本社区还没有发布{MISSING.get(kind, kind)}"
        return REASONS.get(reason, reason)

    waiting: list[dict[str, Any]] = []
    unpaired: list[dict[str, Any]] = []
    for m in report["unpaired_members"]:
        m["why"] = [(MISSING.get(k, k), why(k, v)) for k, v in m["reasons"].items()]
        alone = set(m["reasons"].values()) == {"not_confirmed"}
        (waiting if alone else unpaired).append(m)
    return {
        "report": report,
        "who": who,
        "reasons": REASONS,
        "missing": MISSING,
        "published": any(published.values()),
        "waiting": waiting,
        "unpaired": unpaired,
    }


@router.get("/community/pairing")
async def pairing(request: Request, api: ApiDep, me: Worker, format: str = "") -> Response:
    """双对接: who is not yet dual-paired and why, which places are open and why (4 calls)."""
    context = await pairing_context(api, me.code)
    if format == "xlsx":
        report, who = context["report"], context["who"]
        return await sheets.download(
            f"对接情况_{me.code}_{stamp()}.xlsx",
            [
                (
                    "未完成双对接的党员",
                    ("党员", "领导干部", "缺少", "原因"),
                    (
                        (
                            who.get(m["member_id"], ""),
                            "是" if m["is_leader_cadre"] else "否",
                            "、".join(MISSING.get(k, k) for k in m["missing"]),
                            "；".join(f"{kind}：{text}" for kind, text in m["why"]),
                        )
                        for m in report["unpaired_members"]
                    ),
                ),
                (
                    "有空余名额",
                    ("类型", "标题", "空余名额", "原因"),
                    (
                        (
                            MISSING.get(s["kind"], s["kind"]),
                            s["title"],
                            s["open_places"],
                            REASONS.get(s["reason"], s["reason"]),
                        )
                        for s in report["uncovered_needs"] + report["unfilled_projects"]
                    ),
                ),
            ],
        )
    context["flash"] = flash(request)
    return pages.render(request, "community/pairing.html", context)


RUN_POLLS, RUN_POLL_SECONDS = 60, 0.5  # how long the page follows a run: 30 s


@router.post("/community/pairing/run", dependencies=[Checked])
async def run_pairing(request: Request, api: ApiDep, me: Worker) -> Response:
    """开始自动对接: the API queues the run for pairing's worker and this page follows it
    (a community's run takes seconds); with htmx the report is swapped in when it is done."""
    run = await api.post("/pairings/run", {"scope": f"community:{me.code}"})
    for _ in range(RUN_POLLS):
        if run["state"] in ("done", "failed"):
            break
        await asyncio.sleep(RUN_POLL_SECONDS)
        run = await api.get(f"/pairings/runs/{run['id']}")
    if run["state"] == "done":
        message = f"对接完成：新增 {(run.get('result') or {}).get('created', 0)} 条对接"
    elif run["state"] == "failed":
        message = "对接未能完成，请稍后再试"
    else:
        message = "对接正在进行，请稍后刷新查看结果"
    if not htmx(request):
        return done(request, "/community/pairing", message)
    context = await pairing_context(api, me.code)
    context["ran"] = message
    return pages.render(request, "community/_pairing_report.html", context)


# --- 7. the poster -------------------------------------------------------------------------

STEPS = [
    "用手机扫描上方二维码（微信或浏览器均可）",
    "输入手机号，填写收到的短信验证码",
    "填写单位和居住社区，提交报到，社区确认后即完成",
]


def poster_url(request: Request, code: str) -> str:
    public: str = request.app.state.config.public_url
    return f"{public.rstrip('/')}/c/{code}"


@router.get("/community/poster")
async def poster(request: Request, api: ApiDep, me: Worker) -> Response:
    """扫码报到海报: the QR code, the address, PNG and PDF to print (1 call)."""
    community = await api.get(f"/directory/communities/{me.code}")
    context = {"community": community, "url": poster_url(request, me.code), "steps": STEPS}
    return pages.render(request, "community/poster.html", context)


@router.get("/community/poster.png")
async def poster_png(request: Request, me: Worker) -> Response:
    """The QR code alone (no API call: it carries only the community's code)."""
    data = posters.qr_png(poster_url(request, me.code), scale=10)
    headers = {"Cache-Control": "private, max-age=3600"}
    return Response(data, media_type="image/png", headers=headers)


@router.get("/community/poster.pdf")
async def poster_pdf(request: Request, api: ApiDep, me: Worker) -> Response:
    """The A4 poster to print (1 call)."""
    community = await api.get(f"/directory/communities/{me.code}")
    where = " · ".join(
        n for n in (community.get("district_name"), community.get("street_name")) if n
    )
    try:
        data = await asyncio.to_thread(
            posters.poster_pdf, community["name"], where, poster_url(request, me.code), STEPS
        )
    except posters.FontMissing as exc:
        raise pages.PageRefused(503, f"暂时无法生成PDF：{exc}") from None
    name = quote(f"扫码报到海报_{community['name']}.pdf")
    return Response(
        data,
        media_type="application/pdf",
        headers={"Content-Disposition": f"inline; filename*=UTF-8''{name}"},
    )
