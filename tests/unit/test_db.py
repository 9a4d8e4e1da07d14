"""The unit of work on a SQLite file: outbox rows only on commit, the inbox, UTC timestamps."""

from __future__ import annotations

import gc
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, event, insert, select
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.clock import SimulatedClock
from shared.db import (
    Database,
    UnitOfWork,
    UTCDateTime,
    inbox_table,
    messaging_stats,
    outbox_table,
    service_metadata,
)
from shared.events import Envelope, MemberRegistered, envelope_for, parse

NOON_UTC = datetime(2016, 6, 26, 4, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(NOON_UTC)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    metadata = service_metadata()
    Table(
        "stamps",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("at", UTCDateTime(), nullable=True),
    )
    database = Database(f"sqlite:///{tmp_path / 'service.db'}", metadata)
    metadata.create_all(database.engine)
    yield database
    database.dispose()


def unit_of_work(db: Database, clock: SimulatedClock) -> UnitOfWork:
    return UnitOfWork(db, producer="registration", campaign="servicemonth-2016", clock=clock)


def member_registered() -> MemberRegistered:
    return MemberRegistered.model_validate(
        {
            "member_id": str(uuid.uuid4()),
            "unit_code": "U410303001",
            "unit_district": "410303",
            "communities": [
                {
                    "registration_id": str(uuid.uuid4()),
                    "community_code": "410303001001",
                    "role": "unit",
                    "district": "410303",
                }
            ],
        }
    )


def incoming() -> Envelope:
    return envelope_for(
        member_registered(),
        district="410303",
        campaign="servicemonth-2016",
        producer="registration",
        occurred_at=NOON_UTC,
    )


def outbox_rows(db: Database) -> list[dict[str, object]]:
    with db.session() as session:
        rows = session.execute(select(outbox_table(db.metadata))).mappings().all()
    return [dict(row) for row in rows]


# --- the outbox -----------------------------------------------------------------------


def test_events_emitted_without_commit_leave_the_outbox_empty(
    db: Database, clock: SimulatedClock
) -> None:
    with unit_of_work(db, clock) as uow:
        uow.emit(member_registered(), district="410303")

    assert outbox_rows(db) == []


def test_events_emitted_before_an_error_leave_the_outbox_empty(
    db: Database, clock: SimulatedClock
) -> None:
    with pytest.raises(RuntimeError), unit_of_work(db, clock) as uow:
        uow.emit(member_registered(), district="410303")
        raise RuntimeError("handler failed")

    assert outbox_rows(db) == []


def test_committed_event_becomes_one_outbox_row_whose_body_parses(
    db: Database, clock: SimulatedClock
) -> None:
    event = member_registered()
    with unit_of_work(db, clock) as uow:
        envelope = uow.emit(event, district="410303")
        uow.commit()

    [row] = outbox_rows(db)
    parsed_envelope, parsed_event = parse(str(row["body"]))
    assert parsed_envelope == envelope
    assert parsed_event == event
    assert row["event_id"] == str(envelope.id)
    assert row["routing_key"] == "410303.member.registered"
    assert row["sent_at"] is None


def test_emitted_event_carries_the_unit_of_work_time_producer_and_campaign(
    db: Database, clock: SimulatedClock
) -> None:
    clock.advance(timedelta(days=2))
    with unit_of_work(db, clock) as uow:
        envelope = uow.emit(member_registered(), district="410305")
        uow.commit()

    assert envelope.occurred_at == NOON_UTC + timedelta(days=2)
    assert (envelope.producer, envelope.campaign, envelope.district) == (
        "registration",
        "servicemonth-2016",
        "410305",
    )
    assert uow.emitted == [envelope]


def test_outbox_created_at_reads_back_timezone_aware_utc(
    db: Database, clock: SimulatedClock
) -> None:
    with unit_of_work(db, clock) as uow:
        uow.emit(member_registered(), district="410303")
        uow.commit()

    [row] = outbox_rows(db)
    assert row["created_at"] == NOON_UTC
    assert isinstance(row["created_at"], datetime)
    assert row["created_at"].tzinfo == UTC


def test_messaging_stats_count_pending_events_and_applied_ones(
    db: Database, clock: SimulatedClock
) -> None:
    with unit_of_work(db, clock) as uow:
        uow.emit(member_registered(), district="410303")
        uow.emit(member_registered(), district="410303")
        uow.first_time(incoming())
        uow.commit()

    with unit_of_work(db, clock) as uow:
        stats = messaging_stats(uow)

    assert stats == {"events_sent": 0, "events_pending": 2, "events_applied": 1}


# --- after-commit actions -------------------------------------------------------------


@pytest.mark.parametrize(
    ("commits", "expected"),
    [(2, ["enqueued"]), (0, [])],
    ids=["once the transaction commits, once", "never when left uncommitted"],
)
def test_after_commit_actions_run_only_once_the_transaction_commits(
    commits: int, expected: list[str], db: Database, clock: SimulatedClock
) -> None:
    ran: list[str] = []
    with unit_of_work(db, clock) as uow:
        uow.after_commit(lambda: ran.append("enqueued"))
        assert ran == []
        for _ in range(commits):
            uow.commit()

    assert ran == expected


# --- the inbox ------------------------------------------------------------------------


def test_an_event_is_applied_the_first_time_and_recognised_the_second(
    db: Database, clock: SimulatedClock
) -> None:
    envelope = incoming()
    with unit_of_work(db, clock) as uow:
        first = uow.first_time(envelope)
        uow.commit()
    with unit_of_work(db, clock) as uow:
        second = uow.first_time(envelope)
        uow.commit()

    assert (first, second) == (True, False)


def test_the_same_event_twice_in_one_unit_of_work_is_first_only_once(
    db: Database, clock: SimulatedClock
) -> None:
    envelope = incoming()
    with unit_of_work(db, clock) as uow:
        assert uow.first_time(envelope)
        assert not uow.first_time(envelope)
        uow.commit()

    with db.session() as session:
        rows = session.execute(select(inbox_table(db.metadata))).all()
    assert len(rows) == 1


def test_an_event_applied_without_commit_is_applied_again_next_time(
    db: Database, clock: SimulatedClock
) -> None:
    envelope = incoming()
    with unit_of_work(db, clock) as uow:
        assert uow.first_time(envelope)

    with unit_of_work(db, clock) as uow:
        assert uow.first_time(envelope)


def test_a_different_event_is_first_time_too(db: Database, clock: SimulatedClock) -> None:
    with unit_of_work(db, clock) as uow:
        assert uow.first_time(incoming())
        assert uow.first_time(incoming())


def test_inbox_records_the_event_type_and_when_it_was_applied(
    db: Database, clock: SimulatedClock
) -> None:
    envelope = incoming()
    clock.advance(timedelta(minutes=3))
    with unit_of_work(db, clock) as uow:
        uow.first_time(envelope)
        uow.commit()

    with db.session() as session:
        row = session.execute(select(inbox_table(db.metadata))).mappings().one()
    assert row["event_id"] == str(envelope.id)
    assert row["event_type"] == "member.registered"
    assert row["processed_at"] == NOON_UTC + timedelta(minutes=3)
    assert row["processed_at"].tzinfo == UTC


# --- UTCDateTime ----------------------------------------------------------------------


def stamps(metadata: MetaData) -> Table:
    return metadata.tables["stamps"]


def test_a_timestamp_in_another_zone_reads_back_as_the_same_instant_in_utc(
    db: Database,
) -> None:
    in_luoyang = datetime(2016, 7, 1, 20, 15, tzinfo=ZoneInfo("Asia/Shanghai"))
    with db.session() as session:
        session.execute(insert(stamps(db.metadata)).values(id=1, at=in_luoyang))
        session.commit()
        read = session.scalar(select(stamps(db.metadata).c.at))

    assert read == in_luoyang
    assert read is not None
    assert read.tzinfo == UTC
    assert (read.hour, read.minute) == (12, 15)


def test_a_missing_timestamp_reads_back_as_none(db: Database) -> None:
    with db.session() as session:
        session.execute(insert(stamps(db.metadata)).values(id=1, at=None))
        session.commit()

        assert session.scalar(select(stamps(db.metadata).c.at)) is None


def test_a_naive_timestamp_is_refused(db: Database) -> None:
    with db.session() as session, pytest.raises(StatementError, match="timezone-aware"):
        session.execute(insert(stamps(db.metadata)).values(id=1, at=datetime(2016, 7, 1, 20)))


def test_each_service_metadata_is_its_own_with_outbox_and_inbox() -> None:
    first, second = service_metadata(), service_metadata()

    assert first is not second
    assert {"outbox", "inbox"} <= set(first.tables)
    assert {"outbox", "inbox"} <= set(second.tables)


class ReplicaBase(DeclarativeBase):
    pass


class Replica(ReplicaBase):
    """A consumer's replica of a member, as pairing and notify keep them."""

    __tablename__ = "replicas"
    member_id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[tuple[Database, list[str]]]:
    """A database holding member 1's replica, and the statements run on it (their verbs)."""
    database = Database(f"sqlite:///{tmp_path / 'replicas.db'}", ReplicaBase.metadata)
    ReplicaBase.metadata.create_all(database.engine)
    with database.session() as session:
        session.add(Replica(member_id=1, name="已有"))
        session.commit()
    statements: list[str] = []
    event.listen(
        database.engine,
        "before_cursor_execute",
        lambda *args: statements.append(args[2].split()[0]),
    )
    yield database, statements
    database.dispose()


def test_find_counts_a_row_added_in_the_unit_of_work_and_writes_nothing_before_commit(
    replicas: tuple[Database, list[str]], clock: SimulatedClock
) -> None:
    """A consumer's batch: each handler looks its row up with ``uow.find``; the second
    event about the same member finds the row the first added, and the batch is written
    once, at commit (``session.get`` would have written the pending rows each time)."""
    database, statements = replicas
    with unit_of_work(database, clock) as uow:
        added = Replica(member_id=2, name="新")
        uow.session.add(added)
        assert uow.find(Replica, 2) is added
        found = uow.find(Replica, 1)
        assert found is not None and found.name == "已有"
        assert uow.find(Replica, 3) is None
        assert "INSERT" not in statements
        uow.commit()
    assert statements.count("INSERT") == 1
    with database.session() as session:
        assert sorted(session.scalars(select(Replica.member_id))) == [1, 2]


def test_preloaded_rows_are_found_without_a_query_each_and_a_written_row_is_not_lost(
    replicas: tuple[Database, list[str]], clock: SimulatedClock
) -> None:
    """A consumer's batch reads the rows its events name in one query (``uow.preload``):
    ``find`` then answers for them, a row there or no row, without a query of its own.
    A row added for a key that had none is found again after the session wrote it and
    let it go (its ``registration.confirmed`` must not find "no member")."""
    database, statements = replicas
    with unit_of_work(database, clock) as uow:
        uow.preload(Replica, [1, 2, 3, None])
        assert statements.count("SELECT") == 1
        found = uow.find(Replica, 1)
        assert found is not None and found.name == "已有"
        assert uow.find(Replica, 2) is None
        assert statements.count("SELECT") == 1  # both answered from what preload read

        uow.session.add(Replica(member_id=2, name="新"))
        uow.session.flush()  # written (a handler's query would do it), then let go
        gc.collect()
        again = uow.find(Replica, 2)
        assert again is not None and again.name == "新"
        uow.commit()
