"""Members' pages: register (双注册), report in through a community's QR link, my
communities and pairings, wishes to claim, the five ones, my record as a PDF, messages,
withdrawal."""

from __future__ import annotations

import asyncio
import re
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import Response

from services.web import labels, pages, records
from services.web.client import Api, ApiError
from services.web.pages import ApiDep, Checked, Person
from services.web.sign_in import start
from services.web.vocabulary import vocabulary

router = APIRouter()
Member = Annotated[Person, Depends(pages.role("member"))]
Registrant = Annotated[Person, Depends(pages.role("registrant"))]
Text = Annotated[str, Form(max_length=200)]
LongText = Annotated[str, Form(max_length=1000)]
Code12 = re.compile(r"^\d{12}$")
#: The five ones before pairing has heard of a new member.
NO_PROGRESS: dict[str, Any] = {
    **dict.fromkeys(records.KINDS, False),
    "complete": False,
    "hours": 0,
    "missing": list(records.KINDS),
}


async def community(api: Api, code: str) -> dict[str, Any] | None:
    """The community of a 12-digit code, or None (no such code, or not a code at all)."""
    if not Code12.match(code or ""):
        return None
    found: dict[str, Any] | None = await pages.or_none(api.get(f"/directory/communities/{code}"))
    return found


async def communities(api: Api, codes: list[str]) -> dict[str, dict[str, Any]]:
    """Code → community, for the codes given (one call each, side by side)."""
    unique = list(dict.fromkeys(codes))
    found = await asyncio.gather(*(community(api, code) for code in unique))
    return {code: c for code, c in zip(unique, found, strict=True) if c}


# --- registering (a registrant) ------------------------------------------------------------


@router.get("/register")
async def register_form(
    request: Request,
    api: ApiDep,
    _who: Registrant,
    community_code: Annotated[str, Query(alias="community", max_length=20)] = "",
    unit_q: Annotated[str, Query(max_length=40)] = "",
    community_q: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    form = {"residence_community_code": community_code}
    return await _register_page(request, api, form, {}, unit_q, community_q)


async def _register_page(
    request: Request,
    api: Api,
    form: dict[str, Any],
    errors: dict[str, str],
    unit_q: str = "",
    community_q: str = "",
    status: int = 200,
    message: str = "",
) -> Response:
    words, residence, units, places = await asyncio.gather(
        vocabulary(api),
        community(api, form.get("residence_community_code", "")),
        _units(api, unit_q) if unit_q else _nothing(),
        _communities(api, community_q) if community_q else _nothing(),
    )
    context = {
        "form": form,
        "errors": errors,
        "vocabulary": words,
        "residence": residence,
        "units": units,
        "unit_q": unit_q,
        "places": places,
        "community_q": community_q,
        "message": message,
    }
    return pages.render(request, "member/register.html", context, status)


async def _nothing() -> list[dict[str, Any]] | None:
    return None


async def _units(api: Api, words: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = await api.get("/directory/units", q=words, limit=20)
    return found


async def _communities(api: Api, words: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = await api.get("/directory/communities", q=words, limit=20)
    return found


@router.get("/register/units")
async def unit_choices(
    request: Request,
    api: ApiDep,
    _who: Registrant,
    unit_q: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    """htmx: the units whose name holds what was typed, as radio buttons."""
    units = await _units(api, unit_q) if unit_q.strip() else []
    context = {"units": units, "unit_q": unit_q, "form": {}}
    return pages.render(request, "member/_units.html", context)


@router.get("/register/communities")
async def community_choices(
    request: Request,
    api: ApiDep,
    _who: Registrant,
    community_q: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    """htmx: communities whose name holds what was typed, as radio buttons."""
    places = await _communities(api, community_q) if community_q.strip() else []
    context = {"places": places, "community_q": community_q, "form": {}}
    return pages.render(request, "member/_communities.html", context)


def _skills(picked: list[str], other: str) -> list[str]:
    """The ticked terms, then the person's own words (registration maps them)."""
    words = [w for w in re.split(r"[、,，;；/\s]+", other) if w]
    return list(dict.fromkeys([*picked, *words]))[:20]


@router.post("/register", dependencies=[Checked])
async def register(
    request: Request,
    api: ApiDep,
    _who: Registrant,
    name: Text = "",
    id_number: Text = "",
    phone: Text = "",
    email: Text = "",
    unit_code: Text = "",
    residence_community_code: Text = "",
    skills: Annotated[list[str], Form(max_length=20)] = [],  # noqa: B006 (FastAPI copies it)
    skills_other: Text = "",
    availability: Annotated[list[str], Form(max_length=5)] = [],  # noqa: B006
    is_leader_cadre: Text = "",
    consent: Text = "",
    unit_q: Annotated[str, Form(max_length=40)] = "",
    community_q: Annotated[str, Form(max_length=40)] = "",
    search: Text = "",
) -> Response:
    form = {
        "name": name,
        "id_number": id_number,
        "phone": phone,
        "email": email,
        "unit_code": unit_code,
        "residence_community_code": residence_community_code,
        "skills": skills,
        "skills_other": skills_other,
        "availability": availability,
        "is_leader_cadre": bool(is_leader_cadre),
        "consent": bool(consent),
    }
    body = {
        **{k: v for k, v in form.items() if k not in ("skills_other", "email")},
        "email": email or None,
        "skills": _skills(skills, skills_other),
    }
    if search:  # a search button without JavaScript: the same form, with what was found
        return await _register_page(request, api, form, {}, unit_q, community_q)
    errors: dict[str, str] = {}
    if not unit_code:
        errors["unit_code"] = "请搜索并选择您的工作单位"
    if not residence_community_code:
        errors["residence_community_code"] = "请搜索并选择您居住的社区"
    if not consent:
        errors["consent"] = "请阅读并勾选同意"
    if errors:
        return await _register_page(request, api, form, errors, status=422)
    try:
        answer = await api.post("/members", body)
    except ApiError as exc:
        if exc.status == 422:
            return await _register_page(request, api, form, pages.field_errors(exc), status=422)
        if exc.status == 409:
            message = (
                "无法完成注册。如果您已经注册过，请用注册时的手机号直接登录；"
                "如有疑问，请联系所在社区。"
            )
            return await _register_page(request, api, form, {}, status=409, message=message)
        raise
    start(request, answer["session"])
    request.session["flash"] = (
        "注册成功！已提交报到，等待社区确认；两个社区都确认后即完成“双报到”。"
    )
    return pages.go("/me", request)


# --- a community's QR link (报到) ---------------------------------------------------------


@router.get("/c/{code}")
async def report_in(request: Request, api: ApiDep, code: str) -> Response:
    """Where a community's poster QR code leads: sign in, then register or report in."""
    person = pages.current(request)
    if not Code12.match(code):
        raise pages.PageRefused(404, "这个二维码不是有效的社区报到码")
    if person is None:
        context = {"code": code, "place": await community(api, code)}
        return pages.render(request, "member/report_in.html", context)
    if person.role == "registrant":
        return pages.go(f"/register?community={code}")
    if person.role != "member":
        return pages.go(person.home)
    place, me = await asyncio.gather(community(api, code), api.get(f"/members/{person.code}"))
    if place is None:
        raise pages.PageRefused(404, "没有找到这个社区")
    here = [r for r in me["registrations"] if r["community_code"] == code]
    context = {"code": code, "place": place, "me": me, "registration": here[0] if here else None}
    return pages.render(request, "member/report_in.html", context)


@router.post("/c/{code}", dependencies=[Checked])
async def move_here(request: Request, api: ApiDep, person: Member, code: str) -> Response:
    """Report in here as the residence community (a move transfers the old one out)."""
    if not Code12.match(code):
        raise pages.PageRefused(404, "这个二维码不是有效的社区报到码")
    await api.patch(f"/members/{person.code}", {"residence_community_code": code})
    request.session["flash"] = "已提交报到，等待社区确认。"
    return pages.go("/me", request)


# --- my page ---------------------------------------------------------------------------------


@router.get("/me")
async def me(request: Request, api: ApiDep, person: Member) -> Response:
    member, progress, pairings = await asyncio.gather(
        api.get(f"/members/{person.code}"),
        pages.or_none(api.get(f"/members/{person.code}/progress")),
        pages.or_none(api.get(f"/members/{person.code}/pairings")),
    )
    progress = progress or NO_PROGRESS
    pairings = pairings or {"pairings": [], "dual_paired": False}
    codes = [r["community_code"] for r in member["registrations"]]
    codes += [p["community_code"] for p in pairings["pairings"]]
    places = await communities(api, codes)
    context = {
        "me": member,
        "progress": progress,
        "pairings": [p for p in pairings["pairings"] if p["state"] == "active"],
        "dual_paired": pairings["dual_paired"],
        "places": places,
        "flash": request.session.pop("flash", None),
    }
    return pages.render(request, "member/home.html", context)


def _confirmed(member: dict[str, Any]) -> list[str]:
    return list(
        dict.fromkeys(
            r["community_code"] for r in member["registrations"] if r["state"] == "confirmed"
        )
    )


@router.get("/me/wishes")
async def wishes(request: Request, api: ApiDep, person: Member) -> Response:
    member = await api.get(f"/members/{person.code}")
    codes = _confirmed(member)
    lists, places = await asyncio.gather(
        asyncio.gather(*(api.get("/wishes", community_code=c, limit=200) for c in codes)),
        communities(api, codes),
    )
    every = [w for found in lists for w in found]
    mine = [
        w
        for w in every
        if w["claim"] and w["claim"]["member_id"] == person.code and w["state"] != "published"
    ]
    context = {
        "open": [w for w in every if w["state"] == "published"],
        "mine": mine,
        "places": places,
        "registered": bool(codes),
        "flash": request.session.pop("flash", None),
    }
    return pages.render(request, "member/wishes.html", context)


WISH_ACTIONS = {
    "claim": "认领成功！请在期限内完成，完成后点击“我已完成，请社区确认”。",
    "fulfil": "已报告完成，等待社区确认。",
    "cancel": "已放弃认领，心愿回到可认领状态。",
}


@router.post("/me/wishes/{wish_id}/{action}", dependencies=[Checked])
async def wish_action(
    request: Request, api: ApiDep, person: Member, wish_id: str, action: str
) -> Response:
    if action not in WISH_ACTIONS or not re.fullmatch(r"[0-9a-f-]{36}", wish_id):
        raise pages.PageRefused(404, "没有这个操作")
    body = {"member_id": person.code} if action == "claim" else None
    try:
        await api.post(f"/wishes/{wish_id}/{action}", body)
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        request.session["flash"] = (
            "这个心愿刚被别人认领了，请看看其他心愿。"
            if action == "claim" and exc.status == 409
            else "社区刚确认您的报到，信息正在同步，请稍后再试。"
            if action == "claim"
            else pages.refusal(exc)
        )
        return pages.go("/me/wishes", request)
    request.session["flash"] = WISH_ACTIONS[action]
    return pages.go("/me/wishes", request)


# --- the five ones ---------------------------------------------------------------------------


@router.get("/me/records")
async def five_ones(request: Request, api: ApiDep, person: Member) -> Response:
    return await _records_page(request, api, person, {}, {})


async def _records_page(
    request: Request,
    api: Api,
    person: Person,
    form: dict[str, Any],
    errors: dict[str, str],
    status: int = 200,
) -> Response:
    member, progress, mine = await asyncio.gather(
        api.get(f"/members/{person.code}"),
        pages.or_none(api.get(f"/members/{person.code}/progress")),
        api.get("/activities", member_id=person.code, limit=200),
    )
    progress = progress or NO_PROGRESS
    codes = _confirmed(member)
    places = await communities(api, codes + [r["community_code"] for r in mine])
    form = {"date": datetime.now(labels.TZ).date().isoformat(), **form}
    context = {
        "progress": progress,
        "records": mine,
        "codes": codes,
        "places": places,
        "form": form,
        "errors": errors,
        "flash": request.session.pop("flash", None),
    }
    return pages.render(request, "member/records.html", context, status)


@router.post("/me/records", dependencies=[Checked])
async def record(
    request: Request,
    api: ApiDep,
    person: Member,
    kind: Text = "",
    community_code: Text = "",
    day: Annotated[str, Form(alias="date", max_length=20)] = "",
    hours: Text = "",
    start_time: Text = "",
    end_time: Text = "",
    note: LongText = "",
) -> Response:
    form = {
        "kind": kind,
        "community_code": community_code,
        "date": day,
        "hours": hours,
        "start_time": start_time,
        "end_time": end_time,
        "note": note,
    }
    errors = records.check(form)
    if errors:
        return await _records_page(request, api, person, form, errors, 422)
    body: dict[str, Any] = {
        "member_id": person.code,
        "kind": kind,
        "community_code": community_code,
        "date": day,
        "note": note or None,
    }
    if hours:
        body["hours"] = float(hours)
    if start_time and end_time:
        body["start_time"], body["end_time"] = start_time, end_time
    try:
        await api.post("/activities", body)
    except ApiError as exc:
        if exc.status in (409, 422):
            found = pages.field_errors(exc) or {"note": pages.refusal(exc)}
            return await _records_page(request, api, person, form, found, 422)
        raise
    request.session["flash"] = "已提交，等待社区核实。核实后计入“五个一”和服务时长。"
    return pages.go("/me/records", request)


@router.get("/me/record.pdf")
async def record_pdf(api: ApiDep, person: Member) -> Response:
    """服务记录证明: the member's verified service and hours, to print."""
    member, progress, verified = await asyncio.gather(
        api.get(f"/members/{person.code}"),
        pages.or_none(api.get(f"/members/{person.code}/progress")),
        api.get("/activities", member_id=person.code, state="verified", limit=500),
    )
    places = await communities(api, [r["community_code"] for r in verified])
    pdf = await asyncio.to_thread(  # half a second of font work: off the event loop
        records.certificate, member, progress or NO_PROGRESS, verified, places, date.today()
    )
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": 'inline; filename="service-record.pdf"'},
    )


# --- messages and withdrawal ----------------------------------------------------------------


@router.get("/me/settings")
async def settings_page(request: Request, api: ApiDep, person: Member) -> Response:
    member, preferences = await asyncio.gather(
        api.get(f"/members/{person.code}"),
        pages.or_none(api.get(f"/members/{person.code}/preferences")),
    )
    preferences = preferences or {"sms": True, "email": True}
    context = {
        "me": member,
        "preferences": preferences,
        "flash": request.session.pop("flash", None),
    }
    return pages.render(request, "member/settings.html", context)


@router.post("/me/preferences", dependencies=[Checked])
async def save_preferences(
    request: Request, api: ApiDep, person: Member, sms: Text = "", email: Text = ""
) -> Response:
    await api.put(f"/members/{person.code}/preferences", {"sms": bool(sms), "email": bool(email)})
    request.session["flash"] = "已保存消息设置。"
    return pages.go("/me/settings", request)


@router.get("/me/withdraw")
async def withdraw_page(request: Request, _person: Member) -> Response:
    return pages.render(request, "member/withdraw.html")


@router.post("/me/withdraw", dependencies=[Checked])
async def withdraw(request: Request, api: ApiDep, person: Member, confirm: Text = "") -> Response:
    if confirm != "注销":
        errors = {"confirm": "请输入“注销”两个字以确认"}
        return pages.render(request, "member/withdraw.html", {"errors": errors}, 422)
    await api.delete(f"/members/{person.code}")
    request.session.clear()
    return pages.render(request, "member/withdrawn.html")
