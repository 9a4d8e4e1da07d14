"""Registration listens to no event: it is where members enter the system. Its periodic
sweep re-sends roster imports whose task was lost."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from services.registration.models import Roster
from services.registration.rosters_api import enqueue
from shared.consumer import Handler
from shared.events import Event
from shared.runtime import Runtime

STUCK_AFTER = timedelta(minutes=30)  # a 200,000-row roster takes about 7


def handlers_for(rt: Runtime) -> dict[type[Event], list[Handler]]:
    return {}


def periodic(rt: Runtime) -> None:
    """A roster still running long after upload, its file unread, lost its task: send it
    again (the import is idempotent, so a slow one run twice adds nothing)."""
    with rt.uow() as uow:
        stuck = list(
            uow.session.scalars(
                select(Roster.id).where(
                    Roster.status == "running",
                    Roster.content.is_not(None),
                    Roster.created_at < uow.now() - STUCK_AFTER,
                )
            )
        )
    for roster_id in stuck:
        enqueue(rt, roster_id)
