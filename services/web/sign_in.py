"""Signing in with the SMS code (手机号 + 验证码), choosing a role, signing out."""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from services.web import labels, pages
from services.web.client import ApiError
from services.web.pages import ApiDep, Checked

router = APIRouter()
Text = Annotated[str, Form(max_length=200)]


@router.get("/")
async def home(request: Request) -> Response:
    person = pages.current(request)
    if person is None:
        return pages.render(request, "welcome.html")
    return pages.go(person.home)


@router.get("/login")
async def login_form(request: Request, next: str = "/") -> Response:
    return pages.render(request, "login.html", {"next": pages.safe_next(next), "step": "phone"})


@router.post("/login/code", dependencies=[Checked])
async def send_code(request: Request, api: ApiDep, phone: Text, next: Text = "/") -> Response:
    context: dict[str, Any] = {"next": pages.safe_next(next), "phone": phone, "step": "phone"}
    try:
        await api.post("/auth/codes", {"phone": phone})
    except ApiError as exc:
        if exc.status == 422:
            context["errors"] = {"phone": labels.field_message("phone", "mobile")}
        elif exc.status == 429:
            context["errors"] = {"phone": pages.refusal(exc)}
        else:
            raise
        return pages.render(request, "login.html", context, exc.status)
    context["step"] = "code"
    return pages.render(request, "login.html", context)


@router.post("/login", dependencies=[Checked])
async def sign_in(
    request: Request,
    api: ApiDep,
    phone: Text,
    code: Text,
    next: Text = "/",
    account: Text = "",
) -> Response:
    body: dict[str, Any] = {"phone": phone, "code": code}
    if account:
        body["role"], _, scope = account.partition("|")
        if scope:
            body["scope"] = scope
    context: dict[str, Any] = {"next": pages.safe_next(next), "phone": phone, "step": "code"}
    try:
        answer = await api.post("/auth/sessions", body)
    except ApiError as exc:
        if exc.status == 422 and exc.problem.get("choices"):
            context.update(step="choose", code=code, choices=exc.problem["choices"])
            return pages.render(request, "login.html", context)
        if exc.status in (401, 422):
            context["errors"] = {"code": "验证码不正确或已过期，请重新获取"}
            return pages.render(request, "login.html", context, exc.status)
        if exc.status == 429:
            context["errors"] = {"code": pages.refusal(exc)}
            return pages.render(request, "login.html", context, 429)
        raise
    start(request, answer)
    target = pages.safe_next(next)
    return pages.go(target if target != "/" else pages.HOME.get(answer["role"], "/"))


def start(request: Request, answer: dict[str, Any]) -> None:
    """A new session from the API's answer; a fresh CSRF token with it."""
    request.session.clear()
    request.session.update(token=answer["token"], role=answer["role"], scope=answer["scope"])
    pages.csrf_token(request)


@router.post("/logout", dependencies=[Checked])
async def sign_out(request: Request, api: ApiDep) -> Response:
    if pages.current(request) is not None:
        with contextlib.suppress(ApiError):  # expired or revoked already: it ends here anyway
            await api.delete("/auth/sessions")
    request.session.clear()
    return pages.go("/login")
