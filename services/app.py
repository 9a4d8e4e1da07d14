"""The HTTP application: one service's routes, or all of them on one port."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Literal

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from services import registry
from services.pairing import needs
from services.registration import directory, rosters_api, staff_api
from shared import observability
from shared.config import SERVICES, settings
from shared.http import BodyLimit, install_error_handlers

#: The most a request to the API may send (docs/contract.md, "Size limits"): an upload its
#: file's cap and a little for the form around it, any other body 1 MB. Refused with 413
#: by its declared length, before it is read.
FORM = 1024 * 1024
API_BODY_LIMITS = (
    (re.compile(r"^/api/v1/rosters$"), rosters_api.MAX_BYTES + FORM),
    (re.compile(r"^/api/v1/staff/import$"), staff_api.MAX_BYTES + FORM),
    (re.compile(r"^/api/v1/communities/[^/]+/(needs|projects)/upload$"), needs.MAX_BYTES + FORM),
    (re.compile(r"^/api/v1/directory$"), directory.MAX_BYTES + FORM),
)


class Health(BaseModel):
    """``ok`` when every service's database answers; per service, ``ok`` or the error."""

    status: Literal["ok", "degraded"]
    services: dict[str, str]


class Readiness(BaseModel):
    """``ready`` when every check passes: per check (``database.<service>``: it answers
    and is migrated to head; ``broker``; ``process.<command>`` under ``servicemonth up``),
    ``ok`` or what is wrong."""

    status: Literal["ready", "unready"]
    checks: dict[str, str]


def create_app(
    services: Iterable[str] = SERVICES,
    web: bool = False,
    port: int | None = None,
    children: Callable[[], Mapping[str, str]] | None = None,
) -> FastAPI:
    """The routes of ``services``; with ``web``, the pages at ``/`` too. Pages reach the
    API over HTTP: at ``SERVICEMONTH_API_URL``, or this process (``port``) when it serves
    the services as well. ``children`` tells ``/readyz`` how the processes ``servicemonth
    up`` supervises are (each ``ok`` or why not)."""
    names = list(services)
    if web and not names:
        return observability.install(_web(None, port), [], registry.runtime)
    app = FastAPI(
        title="servicemonth",
        summary="在职党员进社区服务月 — registration, pairing, notify and reporting",
        version="0.1.0",
    )
    install_error_handlers(app)
    for name in names:
        app.include_router(registry.router(name))

    @app.get("/healthz", tags=["ops"], response_model=Health, responses={503: {"model": Health}})
    def healthz() -> JSONResponse:
        """Each service's database answers."""
        checks: dict[str, str] = {}
        for name in names:
            try:
                registry.runtime(name).db.ping()
                checks[name] = "ok"
            except Exception as exc:
                checks[name] = f"error: {type(exc).__name__}"
        healthy = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {"status": "ok" if healthy else "degraded", "services": checks},
            status_code=200 if healthy else 503,
        )

    @app.get(
        "/readyz", tags=["ops"], response_model=Readiness, responses={503: {"model": Readiness}}
    )
    def readyz() -> JSONResponse:
        """Ready to work: each service's database answers and is at its migrations' head,
        the broker answers, and every process ``servicemonth up`` supervises runs."""
        from services import readiness

        # the children first: as they are when asked, not after the slower checks
        processes = {
            f"process.{child.replace(' ', '.')}": state
            for child, state in (children() if children else {}).items()
        }
        results = readiness.run(readiness.checks(names)) | processes
        ready = all(v == "ok" for v in results.values())
        return JSONResponse(
            {"status": "ready" if ready else "unready", "checks": results},
            status_code=200 if ready else 503,
        )

    app.add_middleware(BodyLimit, limits=API_BODY_LIMITS, default=FORM, prefix="/api/")
    observability.install(app, names, registry.runtime)  # /metrics, request ids, access log
    if web:
        app.mount("/", _web(f"http://127.0.0.1:{port or settings().http_port}", port))
    return app


def _web(api_url: str | None, port: int | None) -> FastAPI:
    from services.web import config as web_config
    from services.web.app import create_web_app

    return create_web_app(web_config.load(settings(), api_url=api_url, port=port))
