"""Calendars that fire once: a scheduler lease per service database, and claims by insert.

APScheduler 3 must not share a job store between schedulers, so exactly one scheduler per
deployment works at a time: it holds a lease row in the service's database and renews it
while alive; another scheduler takes over only when the lease has expired. Even so, two
schedulers may briefly overlap (a paused process that wakes up), so every scheduled piece
of work is claimed first by inserting its row under a unique key — notify's
``reminder_runs`` (job, slot), reporting's ``report_runs`` (subscription, period) — with
:func:`insert_once`: the second claim of a slot loses.

A service that schedules work declares the lease table with :func:`lease_table` on its
metadata.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Column, MetaData, String, Table, insert, update
from sqlalchemy.exc import IntegrityError

from shared.db import UnitOfWork, UTCDateTime


def lease_table(metadata: MetaData) -> Table:
    """The scheduler lease table of one service database."""
    return Table(
        "scheduler_leases",
        metadata,
        Column("name", String(60), primary_key=True),
        Column("holder", String(100), nullable=False),
        Column("expires_at", UTCDateTime(), nullable=False),
    )


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
    if not taken:  # never held, or held by someone alive: the primary key decides
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


def insert_once(uow: UnitOfWork, row: object) -> bool:
    """Add ``row`` (a mapped object) inside ``uow``'s transaction; False when a row with its
    unique key exists already — the slot it stands for was claimed before.

    The claim commits with the work it guards (the caller commits), so a crash before the
    commit leaves the slot free for the next sweep, and a committed slot never runs again.
    """
    try:
        with uow.session.begin_nested():
            uow.session.add(row)
    except IntegrityError:
        return False
    return True
