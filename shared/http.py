"""HTTP conventions shared by every service: problem+json errors and domain exceptions.

Errors are RFC 9457 ``application/problem+json`` documents; a 422 lists every bad field
as ``errors: [{field, message}]``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from typing import Annotated, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.db import DATABASE_DOWN, is_outage

PROBLEM = "application/problem+json"
#: Seconds a caller is asked to wait when the database does not answer.
RETRY_AFTER = 5
log = logging.getLogger(__name__)

#: An id (a UUID) as text in an answer.
Text = Annotated[str, BeforeValidator(str)]


class FromRow(BaseModel):
    """An answer read off a table row: ``Model.model_validate(row)`` takes each field from
    the row's attribute of that name, or of its ``validation_alias`` (``phone`` from
    ``phone_masked``); an answer built field by field works as before."""

    model_config = ConfigDict(from_attributes=True, validate_by_name=True, validate_by_alias=True)


class DomainError(Exception):
    """A refusal a user can act on; ``status`` is the HTTP status it maps to."""

    status = 400
    title = "Bad request"

    def __init__(self, detail: str, errors: list[dict[str, str]] | None = None, **extra: Any):
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []
        self.extra = extra
        #: Response headers the refusal needs (``Retry-After``, ``WWW-Authenticate``).
        self.headers: dict[str, str] = {}


class Invalid(DomainError):
    status = 422
    title = "Invalid input"


class NotFound(DomainError):
    status = 404
    title = "Not found"


class Conflict(DomainError):
    status = 409
    title = "Conflict"


class TooManyRequests(DomainError):
    """A limit was reached; ``Retry-After`` says in how many seconds to try again."""

    status = 429
    title = "Too many requests"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail, retry_after=retry_after)
        self.headers["Retry-After"] = str(max(1, retry_after))


def problem(
    status: int, title: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "body"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(_request: Request, exc: DomainError) -> JSONResponse:
        extra = dict(exc.extra)
        if exc.errors:
            extra["errors"] = exc.errors
        return problem(exc.status, exc.title, exc.detail, exc.headers or None, **extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": _field(tuple(e["loc"])), "message": str(e["msg"])} for e in exc.errors()
        ]
        return problem(422, "Invalid input", "the request has invalid fields", errors=errors)

    async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
        # The database restarts, refuses connections or every pooled one is busy: the
        # caller can only try again (503 with Retry-After), and the log says which, without
        # the statement and its parameters. Any other database error is a 500 as before.
        if not is_outage(exc):
            raise exc
        cause = type(getattr(exc, "orig", None) or exc).__name__
        log.warning("database unavailable (%s) for %s %s", cause, request.method, request.url.path)
        return problem(
            503,
            "Service unavailable",
            "the database does not answer just now; try again in a few seconds",
            {"Retry-After": str(RETRY_AFTER)},
        )

    for outage in DATABASE_DOWN:
        app.add_exception_handler(outage, _unavailable)


#: What :class:`BodyLimit` answers a refused request: (status, cap in bytes) to the
#: response's content type and body.
Refusal = Callable[[int, int], tuple[bytes, bytes]]


def problem_refusal(status: int, cap: int) -> tuple[bytes, bytes]:
    """A refusal as problem+json (the API's)."""
    if status == 411:
        title, detail = "Length required", "a request body must declare its Content-Length"
    else:
        title, detail = "Content too large", f"the request body may hold at most {cap:,} bytes"
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return PROBLEM.encode(), json.dumps(body).encode()


class BodyLimit:
    """Refuses a request body over its route's cap before anyone reads a byte of it: by its
    declared ``Content-Length`` (413), and a chunked body that declares none (411: every
    client sends the length of what it has; a request with neither has an empty body). The
    server (uvicorn) holds a client to the length it declared. ``limits`` maps a path pattern to
    its cap; other paths under ``prefix`` get ``default``; paths outside ``prefix`` pass
    untouched (a mounted app has its own)."""

    def __init__(
        self,
        app: ASGIApp,
        limits: Sequence[tuple[re.Pattern[str], int]],
        default: int,
        refuse: Refusal = problem_refusal,
        prefix: str = "/",
    ) -> None:
        self.app, self.limits, self.default = app, limits, default
        self.refuse, self.prefix = refuse, prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope["method"] in ("GET", "HEAD", "OPTIONS")
            or not path.startswith(self.prefix)
        ):
            await self.app(scope, receive, send)
            return
        cap = next((n for pattern, n in self.limits if pattern.match(path)), self.default)
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is None and b"transfer-encoding" not in headers:
            await self.app(scope, receive, send)  # no length, not chunked: an empty body
            return
        if declared is None or not declared.isdigit():
            status = 411
        elif int(declared) > cap:
            status = 413
        else:
            await self.app(scope, receive, send)
            return
        content_type, body = self.refuse(status, cap)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", content_type), (b"connection", b"close")],
            }
        )
        await send({"type": "http.response.body", "body": body})
