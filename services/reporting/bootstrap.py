"""Builds reporting: its runtime (settings, database, clock, sealer) and the message bus
that runs its commands (:data:`services.reporting.handlers.COMMANDS`) with it.

Entrypoints never build dependencies themselves: routes take :func:`bus` and
:func:`runtime` as FastAPI dependencies, Celery tasks and ``servicemonth report`` call
:func:`bus`, the consume process hands its runtime to :func:`bootstrap`; tests give their
own runtime (or install one with ``shared.runtime.override``, which :func:`runtime` and
:func:`bus` then use).
"""

from __future__ import annotations

from services.reporting import NAME, handlers
from services.reporting.models import Base
from shared import runtime as shared_runtime
from shared.config import Settings
from shared.messagebus import MessageBus
from shared.runtime import Runtime


def bootstrap(
    settings: Settings | None = None, *, runtime: Runtime | None = None
) -> MessageBus[Runtime]:
    """Reporting's bus over ``runtime`` (or one built from ``settings``, or the
    process-wide one when neither is given)."""
    if runtime is None:
        runtime = (
            shared_runtime.build(NAME, Base.metadata, settings)
            if settings is not None
            else shared_runtime.get(NAME, Base.metadata)
        )
    return MessageBus(handlers.COMMANDS, runtime)


def runtime() -> Runtime:
    """The process-wide runtime of reporting, made on first use (after any fork)."""
    return shared_runtime.get(NAME, Base.metadata)


def bus() -> MessageBus[Runtime]:
    """The process-wide bus: reporting's commands over :func:`runtime` (a bus is only the
    table and its dependencies, so one is made per call and an override is seen at once)."""
    return bootstrap(runtime=runtime())
