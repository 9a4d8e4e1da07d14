"""Every background task is retried while its database does not answer, never acknowledged
as failed: found by the chaos month, where a pairing run queued while PostgreSQL refused
connections stayed ``queued`` for ever (its task failed once and was acknowledged)."""

from __future__ import annotations

import importlib

import pytest
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as SqlTimeout

from shared.config import SERVICES

TASKS = [
    (service, name, task)
    for service in SERVICES
    for name, task in importlib.import_module(f"services.{service}.tasks").app.tasks.items()
    if not name.startswith("celery.")
]


def test_every_service_has_tasks_to_check() -> None:
    assert {service for service, _, _ in TASKS} == set(SERVICES)


@pytest.mark.parametrize(("service", "name", "task"), TASKS, ids=[n for _, n, _ in TASKS])
def test_a_task_retries_while_its_database_does_not_answer(
    service: str, name: str, task: object
) -> None:
    retried = tuple(getattr(task, "autoretry_for", ()))
    for outage in (OperationalError, SqlTimeout):
        assert issubclass(outage, retried), f"{name} gives up when {outage.__name__}"
    assert task.max_retries is None or task.max_retries >= 10  # type: ignore[attr-defined]
