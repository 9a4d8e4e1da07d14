"""Calendars that fire once: a scheduler lease per service database, and (job, slot) claims.

APScheduler 3 must not share a job store between schedulers, so exactly one scheduler per
deployment works at a time: it holds a lease row in the service's database and renews it
while alive; another scheduler takes over only when the lease has expired. Even so, two
schedulers may briefly overlap (a paused process that wakes up), so every scheduled piece
of work is claimed by a unique ``(job, slot)`` row first: the second claim of a slot loses.

A service that schedules work declares the two tables with :func:`scheduling_tables` on its
metadata.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Column, MetaData, String, Table, insert, select, update
from sqlalchemy.exc import IntegrityError

from shared.db import UnitOfWork, UTCDateTime


def scheduling_tables(metadata: MetaData) -> tuple[Table, Table]:
    """The lease and slot-claim tables of one service database."""
    leases = Table(
        "scheduler_leases",
        metadata,
        Column("name", String(60), primary_key=True),
        Column("holder", String(100), nullable=False),
        Column("expires_at", UTCDateTime(), nullable=False),
    )
    slots = Table(
        "schedule_slots",
        metadata,
        Column("job", String(100), primary_key=True),
        Column("slot", String(100), primary_key=True),
        Column("claimed_by", String(100), nullable=False),
        Column("claimed_at", UTCDateTime(), nullable=False),
    )
    return leases, slots


def hold_lease(uow: UnitOfWork, name: str, holder: str, ttl: timedelta) -> bool:
    """Take or renew the lease ``name`` for ``holder``; False while someone else holds it.

    One conditional UPDATE decides between live holders; the INSERT for a lease that never
    existed is guarded by the primary key. Commits.
    """
    table = uow.db.metadata.tables["scheduler_leases"]
    now = uow.now()
    taken = uow.session.execute(
        update(table)
        .where(table.c.name == name, (table.c.holder == holder) | (table.c.expires_at < now))
        .values(holder=holder, expires_at=now + ttl)
    ).rowcount  # type: ignore[attr-defined]
    if not taken:
        if uow.session.scalar(select(table.c.name).where(table.c.name == name)) is not None:
            uow.session.rollback()
            return False
        try:
            with uow.session.begin_nested():
                uow.session.execute(
                    insert(table).values(name=name, holder=holder, expires_at=now + ttl)
                )
        except IntegrityError:
            uow.session.rollback()
            return False
    uow.commit()
    return True


def release_lease(uow: UnitOfWork, name: str, holder: str) -> None:
    """Give the lease up at shutdown so the next scheduler need not wait for it to expire."""
    table = uow.db.metadata.tables["scheduler_leases"]
    uow.session.execute(
        update(table)
        .where(table.c.name == name, table.c.holder == holder)
        .values(expires_at=datetime(1970, 1, 1, tzinfo=uow.now().tzinfo))
    )
    uow.commit()


def claim_slot(uow: UnitOfWork, job: str, slot: str, holder: str) -> bool:
    """Claim ``(job, slot)`` inside ``uow``'s transaction; False when it was claimed before.

    The claim commits with the work it guards (the caller commits), so a crash before the
    commit leaves the slot free for the next sweep, and a committed slot never runs again.
    """
    table = uow.db.metadata.tables["schedule_slots"]
    try:
        with uow.session.begin_nested():
            uow.session.execute(
                insert(table).values(job=job, slot=slot, claimed_by=holder, claimed_at=uow.now())
            )
    except IntegrityError:
        return False
    return True
