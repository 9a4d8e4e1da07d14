"""``copy_rows`` (COPY … FROM STDIN on PostgreSQL) fails the way a statement would, so its
callers keep their handling: a key taken is an ``IntegrityError`` (a roster import sorts its
chunk again), a database gone away is an outage the consumer waits out instead of counting
a failed event towards its dead letter."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError, OperationalError

from shared.db import copy_rows, is_outage
from tests.conftest import PG_ADMIN

pytestmark = pytest.mark.parametrize("backend", ["production"], indirect=True)
COLUMNS = ("event_id", "event_type", "processed_at")


def row(event_id: str) -> tuple[Any, ...]:
    return (event_id, "member.registered", datetime(2016, 7, 1, tzinfo=UTC))


def test_a_key_taken_is_an_integrity_error(backend: Any) -> None:
    engine = backend.rt("reporting").db.engine
    with engine.begin() as conn:
        copy_rows(conn, "inbox", COLUMNS, [row("a"), row("b")])
    with engine.connect() as conn, pytest.raises(IntegrityError):
        copy_rows(conn, "inbox", COLUMNS, [row("c"), row("a")])
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM inbox")) == 2


def test_a_database_gone_away_is_an_outage(backend: Any) -> None:
    engine = backend.rt("reporting").db.engine
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            pid = conn.scalar(text("SELECT pg_backend_pid()"))
            with admin.connect() as other:
                other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            with pytest.raises(OperationalError) as failed:
                copy_rows(conn, "inbox", COLUMNS, [row("x")])
        assert is_outage(failed.value)
    finally:
        admin.dispose()
