"""Notify's part of the consume process: its event handlers and its periodic sweep."""

from __future__ import annotations

from services.notify import handlers
from services.notify.bootstrap import bootstrap
from services.notify.commands import SweepDueMessages
from shared.messagebus import EventTable
from shared.runtime import Runtime


def handlers_for(rt: Runtime) -> EventTable:
    """The events notify listens to and what it does with each (:func:`handlers.events`)."""
    return handlers.events(bootstrap(runtime=rt).deps)


def periodic(rt: Runtime) -> dict[str, int]:
    """Hand the send task every message that is due now and that no task is expected for
    (deferred ones whose time has come, ones whose task was lost)."""
    return {"dispatched": bootstrap(runtime=rt).handle(SweepDueMessages())}
