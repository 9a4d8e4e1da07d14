"""Rebuild: empty the projections and replay the event log through the same handlers.

The log is replayed in the order the envelopes were first applied (``position``), so the
read models come out identical. It runs in one transaction: readers see the old read
models until the new ones are complete, and the live consumer waits (its first write is
the log, which is locked for the duration on PostgreSQL; SQLite serialises writers).
Daily snapshots are kept: they record what was known at each day's end.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import delete, select, text

from services.reporting.models import (
    EventLogEntry,
    MemberFact,
    MemberScope,
    MemberStatus,
    PairingState,
    Place,
    RecordFact,
    RegistrationState,
    WishState,
)
from shared.events import Event, parse
from shared.messagebus import EventHandler
from shared.runtime import Runtime

#: The read models a rebuild recreates from the log (the log and the snapshots stay).
TABLES = (
    Place,
    MemberFact,
    MemberScope,
    MemberStatus,
    RegistrationState,
    PairingState,
    WishState,
    RecordFact,
)
BATCH = 1000
Progress = Callable[[int], None]


def rebuild(
    rt: Runtime,
    projections: Mapping[type[Event], Sequence[EventHandler[Any]]],
    progress: Progress | None = None,
    batch: int = BATCH,
) -> int:
    """Replay the whole log through ``projections`` (the handler table's
    :data:`~services.reporting.handlers.PROJECTIONS`); returns the number of events
    replayed. ``progress`` is told how many more were replayed after each batch."""
    handlers = {cls.TYPE: hs for cls, hs in projections.items()}
    replayed = 0
    with rt.uow() as uow:
        session = uow.session
        if not rt.db.is_sqlite:
            session.execute(text("LOCK TABLE event_log IN EXCLUSIVE MODE"))
        for model in TABLES:
            session.execute(delete(model))
        position = 0
        while True:
            rows = session.execute(
                select(EventLogEntry.position, EventLogEntry.body)
                .where(EventLogEntry.position > position)
                .order_by(EventLogEntry.position)
                .limit(batch)
            ).all()
            if not rows:
                break
            for row in rows:
                envelope, event = parse(row.body)
                for handler in handlers.get(envelope.type, []):
                    handler(event, envelope, uow)
            session.flush()
            session.expunge_all()
            position = rows[-1].position
            replayed += len(rows)
            if progress is not None:
                progress(len(rows))
        uow.commit()
    return replayed
