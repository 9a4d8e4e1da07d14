"""The HTTP application: one service's routes, or all of them on one port."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from services import registry
from shared.config import SERVICES, settings
from shared.http import install_error_handlers


class Health(BaseModel):
    """``ok`` when every service's database answers; per service, ``ok`` or the error."""

    status: Literal["ok", "degraded"]
    services: dict[str, str]


def create_app(
    services: Iterable[str] = SERVICES, web: bool = False, port: int | None = None
) -> FastAPI:
    """The routes of ``services``; with ``web``, the pages at ``/`` too. Pages reach the
    API over HTTP: at ``SERVICEMONTH_API_URL``, or this process (``port``) when it serves
    the services as well."""
    names = list(services)
    if web and not names:
        return _web(None, port)
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

    if web:
        app.mount("/", _web(f"http://127.0.0.1:{port or settings().http_port}", port))
    return app


def _web(api_url: str | None, port: int | None) -> FastAPI:
    from services.web import config as web_config
    from services.web.app import create_web_app

    return create_web_app(web_config.load(settings(), api_url=api_url, port=port))
