"""The composition root's table of services: where each one's parts live.

Only the composition root (CLI, ``up``, the demo) imports more than one service, through
this table.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

from fastapi import APIRouter
from sqlalchemy import MetaData

from shared.config import SERVICES
from shared.messagebus import EventTable
from shared.runtime import Runtime


def _module(service: str, part: str) -> ModuleType:
    if service not in SERVICES:
        raise KeyError(service)
    return importlib.import_module(f"services.{service}.{part}" if part else f"services.{service}")


def runtime(service: str) -> Runtime:
    fn: Callable[[], Runtime] = _module(service, "bootstrap").runtime
    return fn()


def metadata(service: str) -> MetaData:
    meta: MetaData = _module(service, "models").Base.metadata
    return meta


def router(service: str) -> APIRouter:
    r: APIRouter = _module(service, "api").router
    return r


def handlers(service: str, rt: Runtime) -> EventTable:
    table: EventTable = _module(service, "consumers").handlers_for(rt)
    return table


def periodic(service: str) -> Callable[[Runtime], Any] | None:
    fn: Callable[[Runtime], Any] | None = getattr(_module(service, "consumers"), "periodic", None)
    return fn


def sweeps(service: str) -> dict[str, float]:
    """The sweep tasks ``service``'s calendar needs fired, with their intervals in seconds."""
    table: dict[str, float] = getattr(_module(service, "tasks"), "SWEEPS", {})
    return table
