"""Registration — 双注册: the directory, members and their community registrations, rosters,
staff accounts and sign-in.

Its parts: ``commands`` (what callers ask), ``handlers`` (the one table of command
handlers; registration listens to no event), ``views`` (reads), ``schemas`` (the HTTP
API's types), ``bootstrap`` (builds the bus), the entrypoints ``api`` (+ ``*_api``),
``tasks`` and ``consumers``; the topic modules ``members``, ``registrations``,
``enrolment``, ``rules``, ``rosters``, ``roster_uploads``, ``workbooks``, ``staff``,
``sessions`` and ``directory`` hold the domain rules and use cases.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.runtime import Runtime

NAME = "registration"


def runtime() -> Runtime:
    """The process-wide runtime, by the name the composition root asks each service for;
    the same as :func:`services.registration.bootstrap.runtime` (not imported from there:
    bootstrap imports this package, so that would be an import cycle)."""
    from services.registration.models import Base
    from shared import runtime as shared_runtime

    return shared_runtime.get(NAME, Base.metadata)
