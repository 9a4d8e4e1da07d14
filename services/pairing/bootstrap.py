"""Builds pairing: its runtime (settings, database, clock) and the message bus that runs
its commands (:data:`services.pairing.handlers.COMMANDS`) with it.

Entrypoints never build dependencies themselves: routes take :func:`bus` and
:func:`runtime` as FastAPI dependencies, the consume process hands its runtime to
:func:`bootstrap`, tests give their own runtime (or install one with
``shared.runtime.override``, which :func:`runtime` and :func:`bus` then use).
"""

from __future__ import annotations

from services.pairing import NAME, handlers
from services.pairing.models import Base
from shared.runtime import Bootstrap

_SERVICE = Bootstrap(NAME, Base.metadata, handlers.COMMANDS)
bootstrap = _SERVICE.bootstrap
runtime = _SERVICE.runtime
bus = _SERVICE.bus
