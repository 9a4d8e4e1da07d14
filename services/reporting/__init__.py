"""Reporting — live figures and scheduled summaries for leaders.

Its parts: ``commands`` (what callers ask), ``handlers`` (the one table of command and
event handlers), ``views`` (reads), ``schemas`` (the HTTP API's types), ``bootstrap``
(builds the bus), the entrypoints ``api`` (+ ``reports_api``), ``tasks``, ``consumers`` and
``cli`` (``servicemonth report``); the topic modules hold the rules and use cases:
``access`` (who reads which scope), ``figures`` (the figures as of any instant),
``projections``, ``pairing_facts``, ``pseudonyms``, ``event_log``, ``spans`` and ``rebuild``
(the read models), ``snapshots``, ``subscriptions``, ``runs``, ``run_state``, ``builds``,
``on_demand`` and ``downloads`` (scheduled reports), ``contents``, ``render``, ``charts``
and ``spreadsheet`` (what a report says and its files).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.runtime import Runtime

NAME = "reporting"


def runtime() -> Runtime:
    """The process-wide runtime, by the name the composition root asks each service for;
    the same as :func:`services.reporting.bootstrap.runtime` (not imported from there:
    bootstrap imports this package, so that would be an import cycle)."""
    from services.reporting.models import Base
    from shared import runtime as shared_runtime

    return shared_runtime.get(NAME, Base.metadata)
