"""Rebuilding reporting's projections from its event log gives identical read models, on
both backends; a redelivered event, or the same state under a new id, changes nothing."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from services.cli import cli
from services.reporting import figures as fig
from services.reporting import rebuild
from services.reporting.models import EventLogEntry
from services.reporting.rebuild import TABLES
from shared.clock import SimulatedClock
from tests.integration.reporting_support import (  # noqa: F401 (admin, clock: fixtures)
    SCOPES,
    START,
    admin,
    clock,
    deliver_to_reporting,
    drive_month,
)
from tests.support import consumer


def dump(backend: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every projection table, rows sorted, without surrogate keys (they are not facts)."""
    found = {}
    with backend.rt("reporting").db.session() as session:
        for model in TABLES:
            columns = [c for c in model.__table__.columns if c.name != "id"]
            rows = session.execute(select(*columns)).all()
            found[model.__tablename__] = sorted((tuple(r) for r in rows), key=repr)
    return found


def test_rebuilding_from_the_event_log_gives_identical_read_models(
    backend: Any, admin: Any, clock: SimulatedClock
) -> None:
    drive_month(backend, admin, clock)
    deliver_to_reporting(backend)
    rt = backend.rt("reporting")
    before = dump(backend)
    assert all(before[t.__tablename__] for t in TABLES), "every projection has rows"
    with rt.uow() as uow:
        figures = fig.figures_many(uow, SCOPES, clock.now() - timedelta(days=1))
        live = fig.figures_many(uow, SCOPES)
    result = CliRunner().invoke(cli, ["report", "rebuild"])
    assert result.exit_code == 0, result.output
    assert "rebuilt the projections from" in result.output
    assert dump(backend) == before
    with rt.uow() as uow:
        assert fig.figures_many(uow, SCOPES, clock.now() - timedelta(days=1)) == figures
        assert fig.figures_many(uow, SCOPES) == live


def test_a_redelivered_event_or_a_repeated_state_changes_nothing(
    backend: Any, admin: Any, clock: SimulatedClock
) -> None:
    drive_month(backend, admin, clock)
    deliver_to_reporting(backend)
    before = dump(backend)
    with backend.rt("reporting").db.session() as session:
        bodies = list(session.scalars(select(EventLogEntry.body).order_by(EventLogEntry.position)))
    reporting = consumer(backend, "reporting")
    assert {reporting.apply(body) for body in bodies} == {"duplicate"}
    # the same states again under new ids (as registration sends member.registered once per
    # district): applied, logged, and the read models do not move
    for body in bodies:
        again = json.loads(body)
        again["id"] = str(uuid.uuid4())
        if again["type"].startswith(("member.", "registration.", "activity.", "directory.")):
            assert reporting.apply(json.dumps(again)) == "applied"
    assert dump(backend) == before


def _reporting_dump_text(backend: Any) -> str:
    """Every row of every reporting table, as text (to look for an id anywhere)."""
    rt = backend.rt("reporting")
    with rt.db.session() as session:
        return "\n".join(
            repr(tuple(row))
            for table in rt.db.metadata.sorted_tables
            for row in session.execute(select(table)).all()
        )


def test_a_withdrawn_member_leaves_closed_periods_alone_and_no_trace_even_after_a_rebuild(
    backend: Any, admin: Any, clock: SimulatedClock
) -> None:
    month = drive_month(backend, admin, clock)
    deliver_to_reporting(backend)
    rt = backend.rt("reporting")
    closed = clock.now()
    with rt.uow() as uow:
        before = fig.figures_many(uow, SCOPES, closed)
        live_members = fig.figures(uow, "city").members
    clock.advance(timedelta(hours=1))
    leaving = next(iter(month.confirmed.values()))[0]
    gone = month.me(leaving).delete(f"/api/v1/members/{leaving}")
    assert gone.status_code in (200, 204), gone.text
    deliver_to_reporting(backend)

    with rt.uow() as uow:
        assert fig.figures_many(uow, SCOPES, closed) == before, "a closed period changed"
        assert fig.figures(uow, "city").members == live_members - 1
    hex_id = uuid.UUID(leaving).hex
    assert hex_id not in _reporting_dump_text(backend).replace("-", "")

    after = dump(backend)
    result = CliRunner().invoke(cli, ["report", "rebuild"])
    assert result.exit_code == 0, result.output
    assert dump(backend) == after
    with rt.uow() as uow:
        assert fig.figures_many(uow, SCOPES, closed) == before
    assert hex_id not in _reporting_dump_text(backend).replace("-", "")


def test_what_the_live_consumer_applies_while_a_rebuild_runs_is_in_the_rebuilt_read_models(
    backend: Any, admin: Any, clock: SimulatedClock
) -> None:
    """The rebuild does not stop the live consumer: a withdrawal applied after the shadow
    tables are written (the member's logged events rewritten under a pseudonym meanwhile)
    is caught up before the swap — the same read models as a quiet rebuild of the same log,
    and no trace of the member."""
    month = drive_month(backend, admin, clock)
    deliver_to_reporting(backend)
    rt = backend.rt("reporting")
    with rt.uow() as uow:
        live_members = fig.figures(uow, "city").members
    clock.advance(timedelta(hours=1))
    leaving = next(iter(month.confirmed.values()))[0]
    gone = month.me(leaving).delete(f"/api/v1/members/{leaving}")
    assert gone.status_code in (200, 204), gone.text

    applied: list[int] = []

    def meanwhile(real: Any) -> Any:
        def fill(self: Any, fold: Any) -> None:
            real(self, fold)
            deliver_to_reporting(backend)  # the live consumer, while the rebuild runs
            applied.append(1)

        return fill

    with pytest.MonkeyPatch.context() as patch:
        for shadow in (rebuild.Postgres, rebuild.Sqlite):
            patch.setattr(shadow, "fill", meanwhile(shadow.fill))
        result = CliRunner().invoke(cli, ["report", "rebuild"])
    assert result.exit_code == 0, result.output
    assert applied, "the live consumer ran during the rebuild"
    during = dump(backend)
    hex_id = uuid.UUID(leaving).hex
    assert hex_id not in _reporting_dump_text(backend).replace("-", "")
    with rt.uow() as uow:
        assert fig.figures(uow, "city").members == live_members - 1

    result = CliRunner().invoke(cli, ["report", "rebuild"])  # quiet, the same log
    assert result.exit_code == 0, result.output
    assert dump(backend) == during
