"""Rebuild: replay the event log into shadow tables, then swap them in at once.

The log is replayed in the order the envelopes were first applied (``position``), so the
read models come out identical. The replay does not stop the live consumer, nor hide the
read models from readers:

1. the log is read in chunks (keyset on ``position``) and folded in memory
   (:mod:`services.reporting.replay`: the rules the live consumer folds with);
2. the fold is written in bulk into shadow tables (PostgreSQL: the same tables in a schema
   of their own, written with COPY; SQLite: ``<table>__rebuild`` tables, in short
   transactions), while the live consumer keeps applying events to the live tables;
3. the events logged meanwhile are folded in rounds, and only the rows they touched are
   rewritten in the shadow tables, until few are left;
4. one short transaction takes the log's lock (the live consumer's first write waits),
   folds the last events, and swaps: PostgreSQL drops each live table and moves its
   shadow (indexes, key and sequence with it) into place; SQLite replaces each table's rows
   with its shadow's.

A member withdrawn while the rebuild runs has their logged events rewritten under a
pseudonym (:mod:`services.reporting.pseudonyms`), some of them already folded under the old
id: the rebuild sees the new pseudonym (in each round, and under the swap's lock) and starts
over from the rewritten log (at most :data:`ATTEMPTS` times). Daily snapshots, the log and the
pseudonyms are kept: they are not projections.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, select, text
from sqlalchemy.schema import CreateIndex, CreateTable

from services.reporting import replay
from services.reporting.models import (
    Base,
    EventLogEntry,
    MemberFact,
    MemberScope,
    MemberStatus,
    PairingState,
    Place,
    Pseudonym,
    RecordFact,
    RegistrationState,
    WishState,
)
from shared.db import SQLITE_GAP, copy_rows
from shared.events import CATALOGUE
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
#: Events read from the log per query.
BATCH = 10_000
#: Rows written per statement (and, on SQLite, per transaction: the write lock is short).
ROWS = 10_000
#: A catch-up round leaving at most this many events lets the swap fold the rest.
SMALL = 500
#: At most this many catch-up rounds before the swap takes what is left.
ROUNDS = 20
#: PostgreSQL: how long the swap waits for readers to let go of a live table, and how often.
LOCK_WAIT = 0.5
SWAP_ATTEMPTS = 20
#: Rebuilds started over (a withdrawal meanwhile) before giving up.
ATTEMPTS = 5
SCHEMA = "reporting_rebuild"  # PostgreSQL: where the shadow tables are built
SUFFIX = "__rebuild"  # SQLite: the shadow tables' names
Progress = Callable[[int], None]
Dispatch = dict[str, replay.Rule]


def rebuild(rt: Runtime, progress: Progress | None = None, batch: int = BATCH) -> int:
    """Replay the whole log through :data:`~services.reporting.replay.FOLDS` into shadow
    tables and swap them in; returns the number of events replayed (those logged during the
    rebuild included). ``progress`` is told how many more were replayed after each chunk."""
    dispatch: Dispatch = {cls.TYPE: rule for cls, rule in replay.FOLDS.items()}
    shadow: Shadow = Postgres(rt) if not rt.db.is_sqlite else Sqlite(rt)
    for _ in range(ATTEMPTS):
        replaying = Replaying(rt, dispatch, progress, batch)
        try:
            replaying.catch_up()
            replaying.check()
            shadow.create()
            shadow.fill(replaying.fold)
            replaying.fold.track()
            for _ in range(ROUNDS):
                if replaying.round(shadow) <= SMALL:
                    break
            shadow.swap(replaying)
        except Withdrawn:
            continue  # the log was rewritten under a pseudonym: fold it again
        return replaying.replayed
    raise RuntimeError(f"members withdrew during each of {ATTEMPTS} rebuilds: run it again")


class Withdrawn(Exception):
    """A member withdrew while the rebuild ran: their logged events were rewritten."""


class Replaying:
    """The fold and how far into the log it is."""

    def __init__(
        self, rt: Runtime, dispatch: Dispatch, progress: Progress | None, batch: int
    ) -> None:
        self.rt = rt
        self.dispatch = dispatch
        self.progress = progress
        self.batch = batch
        self.fold = replay.Fold()
        self.position = 0
        self.replayed = 0
        self.pseudonyms = self.read_pseudonyms()  # before the first read of the log

    def read_pseudonyms(self, conn: Connection | None = None) -> set[uuid.UUID]:
        query = select(Pseudonym.pseudonym)
        if conn is not None:
            return set(conn.scalars(query))
        with self.rt.db.reader() as session:
            return set(session.scalars(query))

    def chunk(self, conn: Connection) -> int:
        """Fold the next chunk of the log read on ``conn``; how many events."""
        rows = conn.execute(
            select(EventLogEntry.position, EventLogEntry.type, EventLogEntry.body)
            .where(EventLogEntry.position > self.position)
            .order_by(EventLogEntry.position)
            .limit(self.batch)
        ).all()
        fold, dispatch = self.fold, self.dispatch
        for _position, kind, body in rows:
            rule = dispatch.get(kind)
            if rule is None:
                continue
            # the log holds envelopes checked on the way in (occurred_at in UTC): only the
            # payload is made a model again, for its types
            data = json.loads(body)
            at = datetime.fromisoformat(data["occurred_at"])
            if at.utcoffset():
                at = at.astimezone(UTC)
            event = CATALOGUE[kind, data["version"]].model_validate(data["payload"])
            rule(fold, event, at)
        if rows:
            self.position = rows[-1].position
            self.replayed += len(rows)
            if self.progress is not None:
                self.progress(len(rows))
        return len(rows)

    def catch_up(self, conn: Connection | None = None) -> int:
        """Fold what the log holds past :attr:`position` (on ``conn``, else chunk by chunk
        in short read transactions); how many events."""
        total = 0
        while True:
            if conn is not None:
                n = self.chunk(conn)
            else:
                with self.rt.db.engine.connect().execution_options(
                    servicemonth_reader=True
                ) as reading:
                    n = self.chunk(reading)
            total += n
            if n < self.batch:
                return total

    def check(self, conn: Connection | None = None) -> None:
        """Raise :class:`Withdrawn` if a pseudonym was given since the fold began."""
        if self.read_pseudonyms(conn) != self.pseudonyms:
            raise Withdrawn

    def round(self, shadow: Shadow) -> int:
        """One catch-up round outside the swap: fold the events logged since, rewrite what
        they touched; how many events."""
        found = self.catch_up()
        self.check()
        shadow.rewrite(self.fold)
        self.fold.track()  # written
        return found


def _touched(fold: replay.Fold) -> dict[str, set[Any]]:
    """What the fold changed since it was last written (``fold.track()`` once written)."""
    return {t: keys for t, keys in (fold.dirty or {}).items() if keys}


def _chunks(rows: Iterable[tuple[Any, ...]], size: int = ROWS) -> Iterable[list[tuple[Any, ...]]]:
    chunk: list[tuple[Any, ...]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _stored(value: Any) -> Any:
    """A value as SQLAlchemy's types store it on SQLite (``shared.db.UTCDateTime``, Uuid,
    Date, Boolean)."""
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return int(value)
    return value


class Shadow:
    """Where a rebuild writes before the swap."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.tables = [Base.metadata.tables[model.__tablename__] for model in TABLES]

    def create(self) -> None:
        raise NotImplementedError

    def fill(self, fold: replay.Fold) -> None:
        raise NotImplementedError

    def rewrite(self, fold: replay.Fold, conn: Connection | None = None) -> None:
        raise NotImplementedError

    def swap(self, replaying: Replaying) -> None:
        raise NotImplementedError


class Postgres(Shadow):
    """The shadow tables in :data:`SCHEMA`, the same names, keys and indexes as the live
    ones; the swap moves them into the live schema."""

    def _in_shadow(self, conn: Connection) -> Connection:
        return conn.execution_options(schema_translate_map={None: SCHEMA})

    def create(self) -> None:
        with self.rt.db.engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
            conn.execute(text(f"CREATE SCHEMA {SCHEMA}"))
            shadow = self._in_shadow(conn)
            for table in self.tables:
                shadow.execute(CreateTable(table))  # the key now, the indexes after the rows

    def _copy(self, conn: Connection, table: str, rows: Iterable[tuple[Any, ...]]) -> None:
        copy_rows(conn, f"{SCHEMA}.{table}", replay.COLUMNS[table], rows)

    def _sequences(self, conn: Connection, fold: replay.Fold) -> None:
        for table in self.tables:
            if "id" in table.c:
                last = fold.ids[table.name]
                conn.execute(
                    text("SELECT setval(pg_get_serial_sequence(:t, 'id'), :n, :called)"),
                    {"t": f"{SCHEMA}.{table.name}", "n": max(last, 1), "called": last > 0},
                )

    def fill(self, fold: replay.Fold) -> None:
        for table in self.tables:
            with self.rt.db.engine.begin() as conn:
                self._copy(conn, table.name, fold.rows(table.name))
                shadow = self._in_shadow(conn)
                for index in table.indexes:
                    shadow.execute(CreateIndex(index))
                conn.execute(text(f"ANALYZE {SCHEMA}.{table.name}"))

    def rewrite(self, fold: replay.Fold, conn: Connection | None = None) -> None:
        if conn is None:
            with self.rt.db.engine.begin() as own:
                self.rewrite(fold, own)
            return
        raw: Any = conn.connection.driver_connection
        for table, keys in _touched(fold).items():
            with raw.cursor() as cur:
                cur.execute(
                    f"DELETE FROM {SCHEMA}.{table} WHERE {replay.KEYS[table]} = ANY(%s)",
                    (list(keys),),
                )
            self._copy(conn, table, fold.rows(table, keys))

    def swap(self, replaying: Replaying) -> None:
        """Retried when a reader holds a live table longer than :data:`LOCK_WAIT`: the live
        consumer waits on the log meanwhile, so the swap never waits long for the others."""
        for attempt in range(SWAP_ATTEMPTS):
            try:
                self._swap(replaying)
                return
            except sa.exc.OperationalError as error:
                locked = getattr(error.orig, "sqlstate", None) == "55P03"  # lock_not_available
                if not locked or attempt == SWAP_ATTEMPTS - 1:
                    raise
                time.sleep(LOCK_WAIT)  # what the fold took in stays marked to be written

    def _swap(self, replaying: Replaying) -> None:
        live = ", ".join(t.name for t in self.tables)
        with self.rt.db.engine.begin() as conn:
            schema = conn.scalar(text("SELECT current_schema()"))
            # the live consumer logs before it projects: it waits here, readers do not
            conn.execute(text("LOCK TABLE event_log IN EXCLUSIVE MODE"))
            replaying.check(conn)  # no withdrawal can commit now: it writes the log
            replaying.catch_up(conn)
            self.rewrite(replaying.fold, conn)
            self._sequences(conn, replaying.fold)
            conn.execute(text(f"SET LOCAL lock_timeout = '{int(LOCK_WAIT * 1000)}ms'"))
            conn.execute(text(f"LOCK TABLE {live} IN ACCESS EXCLUSIVE MODE"))
            for table in self.tables:
                conn.execute(text(f'DROP TABLE "{schema}".{table.name}'))
                conn.execute(text(f'ALTER TABLE {SCHEMA}.{table.name} SET SCHEMA "{schema}"'))
            conn.execute(text(f"DROP SCHEMA {SCHEMA}"))


class Sqlite(Shadow):
    """The shadow tables beside the live ones (``places__rebuild`` …), with their keys only;
    the swap replaces the live rows with theirs in one transaction."""

    def __init__(self, rt: Runtime) -> None:
        super().__init__(rt)
        metadata = sa.MetaData()
        self.shadows = {
            table.name: sa.Table(
                f"{table.name}{SUFFIX}",
                metadata,
                *[
                    sa.Column(c.name, c.type, primary_key=c.primary_key, autoincrement=False)
                    for c in table.columns
                ],
            )
            for table in self.tables
        }

    def create(self) -> None:
        with self.rt.db.engine.begin() as conn:
            for shadow in self.shadows.values():
                shadow.drop(conn, checkfirst=True)
                shadow.create(conn)

    def _insert(self, table: str, rows: Iterable[tuple[Any, ...]], conn: Connection) -> None:
        """``rows`` as SQLAlchemy stores them on SQLite (uuid as hex, instants as naive UTC
        text with microseconds, dates as ISO text), in one executemany per chunk."""
        columns = replay.COLUMNS[table]
        sql = (
            f"INSERT INTO {table}{SUFFIX} ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' for _ in columns)})"
        )
        for chunk in _chunks(rows):
            conn.exec_driver_sql(sql, [tuple(map(_stored, row)) for row in chunk])

    def fill(self, fold: replay.Fold) -> None:
        for table in self.tables:
            for chunk in _chunks(fold.rows(table.name)):
                with self.rt.db.engine.begin() as conn:  # a short write lock each
                    self._insert(table.name, chunk, conn)
                # let go of the lock long enough for a waiting writer (the live consumer, a
                # member registering) to get it: back to back, the chunks starved them past
                # SQLite's busy timeout at city scale (200 chunks)
                time.sleep(SQLITE_GAP)

    def rewrite(self, fold: replay.Fold, conn: Connection | None = None) -> None:
        if conn is None:
            with self.rt.db.engine.begin() as own:
                self.rewrite(fold, own)
            return
        for table, keys in _touched(fold).items():
            shadow = self.shadows[table]
            key = shadow.c[replay.KEYS[table]]
            listed = list(keys)
            for start in range(0, len(listed), 500):
                conn.execute(shadow.delete().where(key.in_(listed[start : start + 500])))
            self._insert(table, fold.rows(table, keys), conn)

    def swap(self, replaying: Replaying) -> None:
        with self.rt.db.engine.begin() as conn:  # BEGIN IMMEDIATE: the write lock
            replaying.check(conn)  # no withdrawal can commit now: it writes the log
            replaying.catch_up(conn)
            self.rewrite(replaying.fold, conn)
            for table in self.tables:
                columns = ", ".join(replay.COLUMNS[table.name])
                conn.execute(table.delete())
                conn.execute(
                    text(
                        f"INSERT INTO {table.name} ({columns}) "
                        f"SELECT {columns} FROM {table.name}{SUFFIX}"
                    )
                )
            for shadow in self.shadows.values():
                shadow.drop(conn)
