"""The HTTP application: one service's routes, or all of them on one port."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from services import registry
from shared.config import SERVICES
from shared.http import install_error_handlers


def create_app(services: Iterable[str] = SERVICES) -> FastAPI:
    names = list(services)
    app = FastAPI(
        title="servicemonth",
        summary="在职党员进社区服务月 — registration, pairing, notify and reporting",
        version="0.1.0",
    )
    install_error_handlers(app)
    for name in names:
        app.include_router(registry.router(name))

    @app.get("/healthz", tags=["ops"])
    def healthz() -> JSONResponse:
        """Each service's database answers."""
        checks: dict[str, Any] = {}
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

    return app
