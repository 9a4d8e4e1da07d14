"""What every page shares: the signed-in person, CSRF, the API client, rendering."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import httpx
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from services.web import labels
from services.web.client import Api, ApiError

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.globals["labels"] = labels
templates.env.filters["label"] = labels.label
templates.env.filters["day"] = labels.day
templates.env.filters["hours"] = labels.hours

#: Where each role lands after signing in.
HOME = {
    "member": "/me",
    "registrant": "/register",
    "community": "/community",
    "unit": "/unit",
    "leader": "/leader",
    "operator": "/leader",
    "admin": "/leader",
}


@dataclass(frozen=True)
class Person:
    """Who is signed in, as the session says (the API checks the token on every call)."""

    token: str
    role: str
    scope: str
    name: str

    @property
    def code(self) -> str:
        """The scope's code: a member's id, a community's or unit's code."""
        return self.scope.split(":", 1)[1] if ":" in self.scope else ""

    @property
    def home(self) -> str:
        return HOME.get(self.role, "/")


class SignInNeeded(Exception):
    """No session (or the API no longer accepts it): to the sign-in page, then back."""

    def __init__(self, back: str) -> None:
        super().__init__(back)
        self.back = back


class PageRefused(Exception):
    """A page this person may not open (403), or that is not there for them (404)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def safe_next(raw: str | None) -> str:
    """A path on this site to go back to; anything else (another host, ``//evil``) is home."""
    if not raw or not raw.startswith("/") or raw.startswith("//") or "\\" in raw:
        return "/"
    return raw


def sign_in_url(back: str) -> str:
    return "/login?next=" + quote(safe_next(back), safe="/")


def here(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def current(request: Request) -> Person | None:
    s = request.session
    if not s.get("token"):
        return None
    return Person(token=s["token"], role=s["role"], scope=s["scope"], name=s.get("name", ""))


def signed_in(request: Request) -> Person:
    person = current(request)
    if person is None:
        raise SignInNeeded(here(request))
    return person


def role(*roles: str) -> Callable[[Request], Person]:
    """A dependency: the signed-in person, who must hold one of ``roles``."""

    def dependency(request: Request) -> Person:
        person = signed_in(request)
        if person.role not in roles:
            raise PageRefused(403, "这个页面不属于您的身份，请返回首页")
        return person

    return dependency


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(24)
    return str(token)


async def check_csrf(request: Request) -> None:
    """Every form posts the session's CSRF token (field ``csrf`` or htmx's header)."""
    expected = request.session.get("csrf", "")
    sent = request.headers.get("x-csrf-token")
    if sent is None:
        form = await request.form()
        field = form.get("csrf")
        sent = field if isinstance(field, str) else ""
    if not expected or not hmac.compare_digest(str(expected).encode(), sent.encode()):
        raise PageRefused(403, "页面已过期，请刷新后重新提交")


Checked = Depends(check_csrf)


def api(request: Request) -> Api:
    """The API client for this request, with the person's token when signed in."""
    http: httpx.AsyncClient = request.app.state.http
    person = current(request)
    address = request.client.host if request.client else ""
    client = Api(http, person.token if person else None, address)
    request.state.api = client
    return client


ApiDep = Annotated[Api, Depends(api)]


async def or_none(call: Awaitable[Any]) -> Any:
    """The answer, or None when the API has none yet (404: e.g. a member registered a
    moment ago whom the other services have not heard of yet)."""
    try:
        return await call
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise


def render(
    request: Request,
    name: str,
    context: Mapping[str, Any] | None = None,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    ctx = {
        "request": request,
        "person": current(request),
        "csrf": csrf_token(request),
        **(context or {}),
    }
    response = templates.TemplateResponse(request, name, ctx, status_code=status)
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def go(url: str, request: Request | None = None) -> Response:
    """After a POST: to ``url`` (303), or with htmx, tell htmx to go there."""
    if request is not None and request.headers.get("hx-request"):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def field_errors(exc: ApiError) -> dict[str, str]:
    """The API's 422 ``errors`` as ``{field: Chinese message}`` for the form."""
    found: dict[str, str] = {}
    for error in exc.errors:
        field = str(error.get("field") or "")
        key = field.split(".")[0].split("[")[0] or "form"
        found.setdefault(key, labels.field_message(key, str(error.get("message") or "")))
    return found


def refusal(exc: ApiError) -> str:
    """A refusal (409, 403, 404, 429 …) said plainly in Chinese."""
    return labels.refusal(exc)


def tab_of(path: str, tabs: list[tuple[str, str]]) -> str:
    """The tab a page belongs to: the longest tab path that is ``path`` or above it
    (/community/records belongs to 今日, /community/publish to 发布)."""
    under = [href for href, _ in tabs if path == href or path.startswith(href + "/")]
    return max(under, key=len, default="")


templates.env.globals["tab_of"] = tab_of
templates.env.globals["navs"] = {
    "member": [
        ("/me", "首页"),
        ("/me/wishes", "微心愿"),
        ("/me/records", "五个一"),
        ("/me/settings", "我的"),
    ],
    "community": [
        ("/community", "今日"),
        ("/community/publish", "发布"),
        ("/community/pairing", "对接"),
        ("/community/poster", "海报"),
    ],
    "unit": [("/unit", "概况"), ("/unit/roster", "花名册"), ("/unit/members", "党员")],
    "leader": [("/leader", "概况"), ("/leader/reports", "报告")],
    "operator": [("/leader", "概况"), ("/leader/reports", "报告")],
    "admin": [("/leader", "概况"), ("/leader/reports", "报告")],
}
