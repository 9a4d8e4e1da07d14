"""Pairing — 双对接: needs, projects, pairings, micro-wishes and the five ones.

Its parts: ``commands`` (what callers ask), ``handlers`` (the one table of command and event
handlers), ``views`` (reads), ``schemas`` (the HTTP API's types), ``bootstrap`` (builds the
bus), the entrypoints ``api`` (+ ``*_api``), ``tasks`` and ``consumers``; the topic modules
``needs``, ``pairings``, ``engine``, ``report``, ``wishes``, ``activities``, ``teams`` and
``access`` hold the domain rules and use cases.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.runtime import Runtime

NAME = "pairing"


def runtime() -> Runtime:
    """The process-wide runtime, by the name the composition root asks each service for;
    the same as :func:`services.pairing.bootstrap.runtime` (which this package may not
    import: bootstrap imports it)."""
    from services.pairing.models import Base
    from shared import runtime as shared_runtime

    return shared_runtime.get(NAME, Base.metadata)
