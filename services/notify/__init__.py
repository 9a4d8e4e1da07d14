"""Notify — the month's SMS and e-mail, each sent once.

Its parts: ``commands`` (what callers ask), ``handlers`` (the one table of command and event
handlers), ``views`` (reads), ``schemas`` (the HTTP API's types), ``bootstrap`` (builds the
bus: providers, dispatch), the entrypoints ``api``, ``tasks``, ``consumers`` and ``cli``;
the topic modules hold the rules and use cases: ``policy`` (what to do with a message now,
pure) and ``sending`` (which carries it out), ``bulk`` and ``messages`` (queueing),
``reminders`` and ``calendar``, ``triggers`` and ``sign_in`` (messages events cause),
``contacts``, ``progress``, ``receipts``, ``history``, ``access``, ``rendering``, ``mail``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.runtime import Runtime

NAME = "notify"


def runtime() -> Runtime:
    """The process-wide runtime, by the name the composition root asks each service for;
    the same as :func:`services.notify.bootstrap.runtime` (which this package may not
    import: bootstrap imports it)."""
    from services.notify.models import Base
    from shared import runtime as shared_runtime

    return shared_runtime.get(NAME, Base.metadata)
