"""What reporting's consume process runs besides relaying its outbox: the events it
listens to, from the one table (:func:`services.reporting.handlers.events`). Reporting has
no periodic sweep here: its tick and snapshots are Celery tasks the scheduler fires
(:data:`services.reporting.tasks.SWEEPS`)."""

from __future__ import annotations

from services.reporting import handlers
from shared.messagebus import EventTable
from shared.runtime import Runtime


def handlers_for(rt: Runtime) -> EventTable:
    """The events reporting projects (and ``auth.revoked``), applied with ``rt``."""
    return handlers.events(rt)
