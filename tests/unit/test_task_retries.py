"""Every background task is retried while its database does not answer, never acknowledged
as failed: found by the chaos month, where a pairing run queued while PostgreSQL refused
connections stayed ``queued`` for ever (its task failed once and was acknowledged)."""

from __future__ import annotations

import importlib

import pytest
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as SqlTimeout

from shared.config import SERVICES
from shared.workers import OUTAGE_RETRIES, RetryWhileDatabaseDown, make_celery

#: sorted: the registry's order depends on import order, and pytest-xdist's workers must
#: collect the same list (they once did not: "Different tests were collected")
TASKS = sorted(
    (
        (service, name, task)
        for service in SERVICES
        for name, task in importlib.import_module(f"services.{service}.tasks").app.tasks.items()
        if not name.startswith("celery.")
    ),
    key=lambda t: (t[0], t[1]),
)


def test_every_service_has_tasks_to_check() -> None:
    assert {service for service, _, _ in TASKS} == set(SERVICES)


@pytest.mark.parametrize(("service", "name", "task"), TASKS, ids=[n for _, n, _ in TASKS])
def test_a_task_retries_while_its_database_does_not_answer(
    service: str, name: str, task: object
) -> None:
    assert isinstance(task, RetryWhileDatabaseDown), f"{name} gives up when its database is away"
    # its own retries leave the database's errors to the base, which tells an outage apart
    retried = tuple(getattr(task, "autoretry_for", ()))
    for outage in (OperationalError, SqlTimeout):
        assert not issubclass(outage, retried), f"{name} retries every {outage.__name__}"
    assert OUTAGE_RETRIES >= 10


def _operational(orig: Exception) -> OperationalError:
    return OperationalError("SELECT 1", {}, orig)


class _Refused(Exception):
    """What psycopg raises when the server refuses a connection: no SQLSTATE."""


class _UndefinedTable(Exception):
    sqlstate = "42P01"


@pytest.mark.parametrize(
    ("raised", "calls", "state"),
    [
        (_operational(_Refused("connection refused")), 3, "SUCCESS"),  # an outage: waits it out
        (SqlTimeout("QueuePool limit reached"), 3, "SUCCESS"),
        (_operational(_UndefinedTable('relation "pairing_runs" does not exist')), 1, "FAILURE"),
    ],
    ids=["connection refused", "pool exhausted", "missing table"],
)
def test_only_an_outage_is_waited_out(raised: Exception, calls: int, state: str) -> None:
    app = make_celery("pairing")
    tried: list[int] = []

    @app.task(name="test.flaky")  # type: ignore[untyped-decorator]
    def flaky() -> str:
        tried.append(1)
        if len(tried) < 3:
            raise raised
        return "done"

    result = flaky.apply()  # eager: a retry runs again at once
    assert (len(tried), result.state) == (calls, state)
