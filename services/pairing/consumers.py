"""Pairing's part of the consume process: its event handlers and its periodic sweep."""

from __future__ import annotations

from services.pairing import handlers
from services.pairing.bootstrap import bootstrap
from services.pairing.commands import SweepWishes
from shared.messagebus import EventTable
from shared.runtime import Runtime


def handlers_for(rt: Runtime) -> EventTable:
    """The events pairing listens to and what it does with each (:func:`handlers.events`)."""
    return handlers.events(rt)


def periodic(rt: Runtime) -> dict[str, int]:
    """Sweep the micro-wishes (the only path that does: there is no Celery task for it):
    claims past their time return, wishes past their deadline expire."""
    return bootstrap(runtime=rt).handle(SweepWishes())
