"""Databases: one per service, engines made lazily per process, and the unit of work.

Every service database carries two tables of the messaging backbone besides its own:
``outbox`` (events committed with the state change that caused them, published later by
the relay) and ``inbox`` (ids of events already applied, recorded in the same transaction
as their effect). :class:`UnitOfWork` ties them to the service's own writes.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from itertools import islice
from types import TracebackType
from typing import Any, TypeVar

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    insert,
    select,
    text,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator

from shared.clock import Clock
from shared.events import Envelope, Event, envelope_for

#: The database restarting, refusing connections, or every pooled connection busy: work
#: waits and tries again (a task, an event), it is not a failure of the work itself. The
#: classes are broad (a missing table is an OperationalError too): :func:`is_outage` tells.
DATABASE_DOWN: tuple[type[Exception], ...] = (OperationalError, PoolTimeout)
#: SQLSTATEs of a server that is away: connection exceptions (class 08), an administrator
#: shutting it down or restarting it (57P01-57P03), too many connections (53300).
_AWAY = ("08", "57P01", "57P02", "57P03", "53300")


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` says the database is away (it will come back and the same work will
    then succeed), not that the work is wrong: a pool timeout, a connection lost or refused
    (no SQLSTATE: the connection never began), one of :data:`_AWAY`, SQLite's busy lock."""
    if isinstance(exc, PoolTimeout):
        return True
    if not isinstance(exc, OperationalError):
        return False
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None)
    if type(orig).__module__.startswith("sqlite3"):
        return "locked" in str(orig) or "busy" in str(orig)
    return sqlstate is None or str(sqlstate).startswith(_AWAY)


T = TypeVar("T")
#: Rows a long upload writes per transaction. On SQLite a writer holds the database's one
#: write lock until it commits, so another writer (a member registering, staff confirming)
#: waits for one chunk, a fraction of a second, instead of a whole upload.
CHUNK = 1000
#: How long an upload lets go of SQLite's write lock between chunks. A waiting writer
#: retries on SQLite's busy handler, at most 100 ms apart: a shorter gap could fall between
#: its retries every time, and the upload would take the lock back before it got a turn.
SQLITE_GAP = 0.11

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is timezone-aware UTC when read back, on SQLite as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def service_metadata() -> MetaData:
    """A service database's metadata, with the backbone's tables in it (outbox, inbox,
    revoked tokens).

    Each service declares ``class Base(DeclarativeBase): metadata = service_metadata()``.
    """
    metadata = MetaData(naming_convention=NAMING)
    messaging_tables(metadata)
    Table(
        "revoked_tokens",  # see shared.auth: sign-outs, disabled accounts, withdrawn members
        metadata,
        Column("key", String(80), primary_key=True),  # jti:<id> or sub:<subject>
        Column("revoked_at", UTCDateTime(), nullable=False),
        Column("expires_at", UTCDateTime(), nullable=True),  # none: as long as the subject
    )
    return metadata


def messaging_tables(metadata: MetaData) -> tuple[Table, Table]:
    """The outbox and inbox tables of one service database."""
    outbox = Table(
        "outbox",
        metadata,
        Column("position", Integer, primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("routing_key", String(200), nullable=False),
        Column("body", Text, nullable=False),
        Column("created_at", UTCDateTime(), nullable=False),
        Column("sent_at", UTCDateTime(), nullable=True),
        Column("attempts", Integer, nullable=False, server_default="0"),
        Column("last_error", Text, nullable=True),
    )
    # the relay's poll (every 0.1 s) reads the unsent rows alone, however long the outbox
    unsent = outbox.c.sent_at.is_(None)
    Index(
        "ix_outbox_unsent",
        outbox.c.attempts,
        outbox.c.position,
        postgresql_where=unsent,
        sqlite_where=unsent,
    )
    inbox = Table(
        "inbox",
        metadata,
        Column("event_id", String(36), primary_key=True),
        Column("event_type", String(100), nullable=False),
        Column("processed_at", UTCDateTime(), nullable=False),
    )
    return outbox, inbox


def outbox_table(metadata: MetaData) -> Table:
    return metadata.tables["outbox"]


def inbox_table(metadata: MetaData) -> Table:
    return metadata.tables["inbox"]


class Database:
    """One service's database. The engine is created on first use in each process.

    A forked child (a Celery worker) gets a fresh engine rather than sharing sockets with
    its parent.
    """

    def __init__(self, url: str, metadata: MetaData) -> None:
        self.url = url
        self.metadata = metadata
        self._engine: Engine | None = None
        self._sessions: sessionmaker[Session] | None = None
        self._readers: sessionmaker[Session] | None = None
        self._pid = 0

    @property
    def is_sqlite(self) -> bool:
        return make_url(self.url).get_backend_name() == "sqlite"

    @property
    def engine(self) -> Engine:
        if self._engine is None or self._pid != os.getpid():
            self._engine = self._create_engine()
            self._sessions = sessionmaker(self._engine, expire_on_commit=False)
            self._readers = sessionmaker(
                self._engine.execution_options(servicemonth_reader=True), expire_on_commit=False
            )
            self._pid = os.getpid()
        return self._engine

    def session(self) -> Session:
        self.engine  # noqa: B018 - makes the engine for this process
        assert self._sessions is not None
        return self._sessions()

    def reader(self) -> Session:
        """A session for reads only: on SQLite it never takes the write lock, so a reader is
        answered while a long import writes (WAL lets both go on)."""
        self.engine  # noqa: B018 - makes the engine for this process
        assert self._readers is not None
        return self._readers()

    def dispose(self) -> None:
        if self._engine is not None and self._pid == os.getpid():
            self._engine.dispose()
        self._engine = None

    def _create_engine(self) -> Engine:
        if not self.is_sqlite:
            return create_engine(self.url, pool_pre_ping=True, pool_size=5, max_overflow=10)
        path = make_url(self.url).database
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        # pysqlite's own transaction handling would start deferred transactions that fail
        # with "database is locked" when they later write; we begin IMMEDIATE ourselves so
        # writers queue on busy_timeout instead. Readers (Database.reader) begin DEFERRED:
        # in WAL mode they see a snapshot and never wait for a writer.
        engine = create_engine(
            self.url,
            connect_args={"isolation_level": None, "timeout": 30, "check_same_thread": False},
            poolclass=NullPool,
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            read_only = conn.get_execution_options().get("servicemonth_reader", False)
            conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

        return engine

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))


class UnitOfWork:
    """One transaction of a service: its own changes, the events they cause, the inbox.

    Nothing is published before :meth:`commit`: events become outbox rows in the same
    transaction and the relay sends them afterwards. Leaving the block without committing
    rolls everything back, events included.
    """

    def __init__(
        self,
        db: Database,
        *,
        producer: str,
        campaign: str,
        clock: Clock,
        correlation_id: uuid.UUID | None = None,
        read_only: bool = False,
    ) -> None:
        self.db = db
        self.read_only = read_only
        self.producer = producer
        self.campaign = campaign
        self.clock = clock
        self.correlation_id = correlation_id
        self.emitted: list[Envelope] = []
        self._after_commit: list[Callable[[], None]] = []
        self.session: Session
        # what :meth:`preload` read: the rows (held, so the session keeps them) and, per
        # model, the keys that had none
        self._preloaded: list[Any] = []
        self._absent: dict[type[Any], set[Any]] = {}

    def __enter__(self) -> UnitOfWork:
        self.session = self.db.reader() if self.read_only else self.db.session()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.session.rollback()
        self.session.close()

    def now(self) -> datetime:
        return self.clock.now()

    def find(self, model: type[T], key: Any) -> T | None:
        """The ``model`` row with primary key ``key`` — one added in this unit of work and
        not written yet included — without writing the pending changes first, as
        ``session.get`` does. A consumer's handlers use it: a batch of events is then
        written once, at commit, instead of once per event. Keys :meth:`preload` found
        no row for are answered without a query until the session writes (a flush)."""
        mapper = sa_inspect(model)
        column = mapper.primary_key[0].key
        for pending in self.session.new:
            if isinstance(pending, model) and getattr(pending, column) == key:
                return pending
        with self.session.no_autoflush:
            if key in self._absent.get(model, ()):
                return None
            return self.session.get(model, key)

    def preload(self, model: type[Any], keys: Iterable[Any]) -> None:
        """Read the ``model`` rows with primary keys ``keys`` in a few queries, so that
        :meth:`find` answers for each of them without one (a consumer does this for the
        rows a batch of events will look up)."""
        wanted = {key for key in keys if key is not None} - self._absent.get(model, set())
        if not wanted:
            return
        # a row added since may be written, then let go by the session: forget the absent
        if not event.contains(self.session, "after_flush", self._forget_absent):
            event.listen(self.session, "after_flush", self._forget_absent)
        column = sa_inspect(model).primary_key[0]
        found: set[Any] = set()
        with self.session.no_autoflush:
            listed = list(wanted)
            for start in range(0, len(listed), 500):
                chunk = listed[start : start + 500]
                for row in self.session.scalars(select(model).where(column.in_(chunk))):
                    self._preloaded.append(row)
                    found.add(getattr(row, column.key))
        self._absent.setdefault(model, set()).update(wanted - found)

    def _forget_absent(self, session: Session, context: Any) -> None:
        self._absent.clear()

    def emit(self, event: Event, *, district: str) -> Envelope:
        """Record ``event`` for publication, routed to ``district``, in this transaction."""
        (envelope,) = self.emit_many([(event, district)])
        return envelope

    def emit_many(self, events: list[tuple[Event, str]]) -> list[Envelope]:
        """Record many ``(event, district)`` pairs in one bulk insert (roster imports)."""
        envelopes = [
            envelope_for(
                event,
                district=district,
                campaign=self.campaign,
                producer=self.producer,
                occurred_at=self.now(),
                correlation_id=self.correlation_id,
            )
            for event, district in events
        ]
        if envelopes:
            self.session.execute(
                insert(outbox_table(self.db.metadata)),
                [
                    {
                        "event_id": str(e.id),
                        "routing_key": e.routing_key,
                        "body": e.model_dump_json(),
                        "created_at": e.occurred_at,
                    }
                    for e in envelopes
                ],
            )
        self.emitted += envelopes
        return envelopes

    def first_time(self, envelope: Envelope) -> bool:
        """Record ``envelope`` in the inbox; False when it was applied before."""
        inbox = inbox_table(self.db.metadata)
        try:
            with self.session.begin_nested():
                self.session.execute(
                    insert(inbox).values(
                        event_id=str(envelope.id),
                        event_type=envelope.type,
                        processed_at=self.now(),
                    )
                )
        except IntegrityError:
            return False
        return True

    def after_commit(self, action: Callable[[], None]) -> None:
        """Run ``action`` once the transaction has committed (e.g. enqueue a task)."""
        self._after_commit.append(action)

    def commit(self) -> None:
        if self.read_only:
            raise RuntimeError("a read-only unit of work commits nothing")
        self.session.commit()
        actions, self._after_commit = self._after_commit, []
        for action in actions:
            action()


def commit_in_chunks(
    uow: UnitOfWork, items: Iterable[T], write: Callable[[list[T]], Any], size: int = CHUNK
) -> None:
    """Pass ``items`` to ``write`` ``size`` at a time and commit after each chunk: no
    transaction lasts a whole upload, so on SQLite other writers get the lock in between.

    Callers check the whole file before calling this: what is refused is refused whole.
    ``write`` emits the events of its rows, which commit with them. If the process dies
    part-way, the chunks committed stay; callers make a re-upload of the same file skip
    them (upserts, ids derived from the file) so it adds only the rest.
    """
    rows = iter(items)
    chunk = list(islice(rows, size))
    while chunk:
        write(chunk)
        uow.commit()
        chunk = list(islice(rows, size))
        if chunk and uow.db.is_sqlite:
            time.sleep(SQLITE_GAP)  # a turn for the writers queued on the lock meanwhile


def copy_rows(
    connection: Connection, table: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]
) -> None:
    """PostgreSQL: ``rows`` (values in ``columns`` order) into ``table`` with ``COPY …
    FROM STDIN`` on ``connection``, in its transaction: bulk writes without the per-row
    cost of INSERT statements. A failure raises what a statement would (SQLAlchemy's
    ``IntegrityError`` for a key taken, ``OperationalError`` for a database gone away:
    :func:`is_outage` knows it)."""
    import psycopg

    driver: Any = connection.connection.driver_connection
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    try:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
    except psycopg.Error as error:  # as SQLAlchemy does for its own statements
        exc: Any = error
        gone = connection.dialect.is_disconnect(exc, driver, None)
        if gone:
            connection.invalidate(exc)
        raise DBAPIError.instance(
            statement,
            None,
            exc,
            psycopg.Error,
            connection_invalidated=gone,
            dialect=connection.dialect,
        ) from None


def messaging_stats(uow: UnitOfWork) -> dict[str, int]:
    """Events a service has sent, still holds, and applied: the same keys for every service."""
    outbox = outbox_table(uow.db.metadata)
    count = select(func.count()).select_from(outbox)
    return {
        "events_sent": uow.session.scalar(count.where(outbox.c.sent_at.is_not(None))) or 0,
        "events_pending": uow.session.scalar(count.where(outbox.c.sent_at.is_(None))) or 0,
        "events_applied": uow.session.scalar(
            select(func.count()).select_from(inbox_table(uow.db.metadata))
        )
        or 0,
    }
