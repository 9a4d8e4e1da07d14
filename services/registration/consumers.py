"""What registration's consume process runs besides relaying its outbox: no event handler
(registration listens to none; members enter the system here) and a periodic sweep that
re-sends roster imports whose task was lost."""

from __future__ import annotations

from services.registration import handlers
from services.registration.bootstrap import bootstrap
from services.registration.commands import ResendStuckRosters
from shared.messagebus import EventTable
from shared.runtime import Runtime


def handlers_for(rt: Runtime) -> EventTable:
    return handlers.events(rt)


def periodic(rt: Runtime) -> None:
    """Hand the sweep to the bus: stuck roster imports are queued again."""
    bootstrap(runtime=rt).handle(ResendStuckRosters())
