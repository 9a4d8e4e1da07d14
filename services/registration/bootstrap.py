"""Builds registration: its runtime (settings, database, clock, sealer) and the message bus
that runs its commands (:data:`services.registration.handlers.COMMANDS`) with it.

Entrypoints never build dependencies themselves: routes take :func:`bus` and
:func:`runtime` as FastAPI dependencies, Celery tasks and the consume process call
:func:`bus` (or :func:`bootstrap` with the runtime they were given), tests give their own
runtime (or install one with ``shared.runtime.override``, which :func:`runtime` and
:func:`bus` then use).
"""

from __future__ import annotations

from services.registration import NAME, handlers
from services.registration.models import Base
from shared.runtime import Bootstrap

_SERVICE = Bootstrap(NAME, Base.metadata, handlers.COMMANDS)
bootstrap = _SERVICE.bootstrap
runtime = _SERVICE.runtime
bus = _SERVICE.bus
