"""The web app as an ASGI application: ``servicemonth serve web`` alone, or mounted at
``/`` by ``servicemonth up`` next to the API."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.gzip import GZipMiddleware
from starlette.middleware.sessions import SessionMiddleware

from services.web import community, leader, member, pages, sign_in, unit
from services.web.client import TIMEOUT, ApiError
from services.web.config import WebSettings
from shared.http import BodyLimit

#: 12 hours, like the API's sessions; the API's own expiry is what counts.
SESSION_SECONDS = 12 * 3600
#: No framework, no inline script: only our own files run.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)


#: The most a request may send: forms are small; the two uploads get their file's cap (the
#: API's own, docs/contract.md "Size limits") and a little for the form around it.
BODY_LIMITS = (
    (re.compile(r"^/unit/roster$"), 51 * 1024 * 1024),
    (re.compile(r"^/community/publish/[a-z]+/upload$"), 11 * 1024 * 1024),
)
FORM_LIMIT = 1024 * 1024


def html_refusal(status: int, cap: int) -> tuple[bytes, bytes]:
    """The page a refused form post gets."""
    if status == 411:
        text = "请求缺少长度，请刷新页面后重试"
    else:
        text = f"提交的内容太大（上限 {cap // (1024 * 1024)} MB）"
    body = f"<!doctype html><meta charset=utf-8><title>{status}</title><p>{text}</p>"
    return b"text/html; charset=utf-8", body.encode()


def create_web_app(config: WebSettings) -> FastAPI:
    http = httpx.AsyncClient(base_url=config.api_url, timeout=TIMEOUT)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await http.aclose()

    app = FastAPI(
        title="servicemonth web",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.http = http
    app.state.config = config
    app.add_middleware(BodyLimit, limits=BODY_LIMITS, default=FORM_LIMIT, refuse=html_refusal)
    app.add_middleware(
        SessionMiddleware,
        secret_key=config.session_key,
        session_cookie="sm_session",
        max_age=SESSION_SECONDS,
        same_site="lax",
        https_only=config.secure,
    )

    @app.middleware("http")
    async def headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        if not request.url.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "no-store")
        client = getattr(request.state, "api", None)
        if client is not None:
            response.headers["X-Api-Calls"] = str(client.calls)
        return response

    @app.exception_handler(pages.SignInNeeded)
    async def sign_in_needed(request: Request, exc: pages.SignInNeeded) -> Response:
        return pages.go(pages.sign_in_url(exc.back), request)

    @app.exception_handler(pages.PageRefused)
    async def refused(request: Request, exc: pages.PageRefused) -> Response:
        return pages.render(request, "error.html", {"message": exc.message}, exc.status)

    @app.exception_handler(ApiError)
    async def api_refused(request: Request, exc: ApiError) -> Response:
        if exc.status == 401:
            # The API no longer takes the session (expired, signed out elsewhere, revoked).
            request.session.clear()
            return pages.go(pages.sign_in_url(pages.here(request)), request)
        status = exc.status if exc.status in (403, 404, 409, 422, 429) else 502
        return pages.render(request, "error.html", {"message": pages.refusal(exc)}, status)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        try:
            answer = await http.get("/healthz", timeout=3.0)
            ok = answer.status_code == 200
        except httpx.HTTPError:
            ok = False
        return JSONResponse({"status": "ok" if ok else "api unreachable"}, 200 if ok else 503)

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        """Ready when the API answers a page's first call (the vocabulary, under /api/, so
        a proxy that sends everything else to the pages routes it to the API)."""
        try:
            answer = await http.get("/api/v1/vocabulary", timeout=3.0)
            api = "ok" if answer.status_code == 200 else f"error: HTTP {answer.status_code}"
        except httpx.HTTPError as exc:
            api = f"error: {type(exc).__name__}"
        ready = api == "ok"
        body = {"status": "ready" if ready else "unready", "checks": {"api": api}}
        return JSONResponse(body, 200 if ready else 503)

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return RedirectResponse("/static/favicon.svg", status_code=301)

    # Only our own files are compressed (htmx: 52 KB → 17 KB): a page compressed next to
    # its CSRF token and something the visitor typed could leak the token (BREACH).
    static = GZipMiddleware(StaticFiles(directory=pages.HERE / "static"), minimum_size=1024)
    app.mount("/static", static, name="static")
    for module in (sign_in, member, community, unit, leader):
        app.include_router(module.router)
    return app
