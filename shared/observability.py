"""What an operator watches on every HTTP process: ``GET /metrics``, request ids and the
access log.

:func:`install` adds both to an app. ``/metrics`` answers a caller on loopback (not through
a proxy: no ``X-Forwarded-For``), or one sending ``Authorization: Bearer`` with
``SERVICEMONTH_METRICS_TOKEN``; anyone else gets 404. Each request gets an id (the
caller's ``X-Request-ID`` when it is a plain token, else a new one), returned in
``X-Request-ID`` and in every log line written while it is handled; the access log line
names the method, the route's template (never the path's values or the query string), the
status and the duration.
"""

from __future__ import annotations

import hmac
import inspect
import ipaddress
import logging
import re
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.datastructures import Headers, MutableHeaders
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import logs, metrics
from shared.config import settings

#: A request id we pass on as it came: short, and nothing a log line could be forged with.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
#: Paths polled by machines: their access lines are DEBUG, not INFO.
_POLLED = frozenset({"/metrics", "/healthz", "/readyz"})

access = logging.getLogger("servicemonth.access")


def install(app: FastAPI, services: Sequence[str], runtime_of: Callable[[str], Any]) -> FastAPI:
    """Give ``app`` (serving ``services``; none: the web app alone) ``GET /metrics``,
    request ids and the access log. ``runtime_of`` gives a service's runtime."""
    names = list(services)
    label = names[0] if len(names) == 1 else ("web" if not names else "all")
    collector = metrics.StateCollector(names, runtime_of)

    def scrape(request: Request) -> Response:
        if not _may_scrape(request):
            return Response(status_code=404)
        body = generate_latest(metrics.process_counters([*names, label]))
        body += generate_latest(collector)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    app.add_api_route("/metrics", scrape, methods=["GET"], include_in_schema=False)
    app.add_middleware(RequestLog, service=label)
    return app


def _may_scrape(request: Request) -> bool:
    token = settings().common.metrics_token
    given = request.headers.get("authorization", "")
    if token is not None and given.lower().startswith("bearer "):
        expected = token.get_secret_value().encode()
        if hmac.compare_digest(given[7:].strip().encode(), expected):
            return True
    if "x-forwarded-for" in request.headers or "forwarded" in request.headers:
        return False
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def request_id(headers: Headers) -> str:
    given = headers.get("x-request-id", "")
    return given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


def route_template(scope: Scope) -> str:
    """The matched route's path template (``/api/v1/members/{member_id}``), or
    ``unmatched``: the label never holds a value from the path. Built from the path and the
    parameters the router matched, so routers included with a prefix give their full
    template; a mount (static files, or a mounted app where no route matched) gives
    ``<its path>/{path}``."""
    route, endpoint = scope.get("route"), scope.get("endpoint")
    if route is None and endpoint is None:
        return "unmatched"
    if isinstance(route, Mount):  # static files, or a mounted app where nothing matched
        return f"{route.path}/{{path}}"
    if route is None and not inspect.isfunction(endpoint):  # the same, as FastAPI marks it
        return f"{scope.get('root_path') or ''}/{{path}}"
    names = {str(v): f"{{{k}}}" for k, v in (scope.get("path_params") or {}).items()}
    path = str(scope.get("path", ""))
    return "/".join(names.get(segment, segment) for segment in path.split("/")) or "/"


class RequestLog:
    """ASGI middleware: the request id, the access log line and the latency histogram."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(Headers(scope=scope))
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                MutableHeaders(scope=message)["X-Request-ID"] = rid
            await send(message)

        with logs.bound(request_id=rid):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                elapsed = time.perf_counter() - started
                route = route_template(scope)
                method = str(scope.get("method", ""))
                metrics.HTTP_DURATION.labels(self.service, method, route, str(status)).observe(
                    elapsed
                )
                access.log(
                    logging.DEBUG if route in _POLLED else logging.INFO,
                    "request",
                    extra={
                        "method": method,
                        "route": route,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 1),
                    },
                )
