"""Two pairing consumers on one queue, on RabbitMQ and PostgreSQL: the event queue has a
single active consumer, so the second ``consume`` is a hot standby that applies nothing
while the first runs and takes over when it dies; no event is applied twice."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from services import registry
from services.pairing.models import MemberReplica
from shared.bus import event_queue_name
from shared.db import inbox_table, outbox_table
from tests import support
from tests.conftest import open_backend

# whole processes on the real servers: make e2e-deployment (tests/conftest.py)
pytestmark = [pytest.mark.production, pytest.mark.deployment]

#: Registrations per batch; three batches: before the standby starts, while the first
#: consumer dies, after it died.
BATCH = 100


@pytest.fixture
def production(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    with open_backend("production", tmp_path / "var", monkeypatch, request) as backend:
        yield backend


@pytest.fixture
def http(production: Any) -> Iterator[Any]:
    support.load_sample_directory(production)
    with support.client(support.issue_token(production, "admin", "city")) as c:
        yield c


def register(http: Any, first_seed: int) -> int:
    """``BATCH`` members register through the API; the number of registration events
    pairing listens to that this adds to registration's outbox."""
    for seed in range(first_seed, first_seed + BATCH):
        response = http.post("/api/v1/members", json=support.member_body(seed))
        assert response.status_code == 201, response.text
    return BATCH


def events_for_pairing(backend: Any) -> int:
    """How many events in registration's outbox pairing applies (it has handlers for;
    the others its queue receives go past, unrecorded)."""
    handled = {cls.TYPE for cls in registry.handlers("pairing", backend.rt("pairing"))}
    db = backend.rt("registration").db
    with db.session() as s:
        keys = s.scalars(select(outbox_table(db.metadata).c.routing_key)).all()
    return sum(key.split(".", 1)[1] in handled for key in keys)  # <district>.<type>


def inbox(backend: Any) -> list[str]:
    db = backend.rt("pairing").db
    with db.session() as s:
        return [str(i) for i in s.scalars(select(inbox_table(db.metadata).c.event_id))]


def members(backend: Any) -> int:
    with backend.rt("pairing").db.session() as s:
        return s.scalar(select(func.count()).select_from(MemberReplica)) or 0


def wait(until: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def queue_consumers(backend: Any) -> list[bool]:
    """Whether each consumer of pairing's event queue is the active one (RabbitMQ's
    view)."""
    vhost = backend.env["SERVICEMONTH_BROKER_URL"].rsplit("/", 1)[1]
    ctl = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    out = subprocess.run(
        [ctl, "-q", "list_consumers", "-p", vhost, "queue_name", "active", "--no-table-headers"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    name = event_queue_name("pairing", backend.settings.deployment)
    rows = [line.split("\t") for line in out.splitlines() if line.startswith(name + "\t")]
    return [row[1].strip() == "true" for row in rows]


def test_two_pairing_consumers_on_one_queue_handle_no_event_twice(
    production: Any, http: Any
) -> None:
    started = time.monotonic()
    registered = register(http, 5000)
    support.relay_all(production)
    # The first: `servicemonth consume pairing`, the process an operator runs.
    first = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "consume", "pairing"],
        env={**os.environ, **production.env},
        start_new_session=True,
    )
    standby = support.consumer(production, "pairing")  # the second, in this process
    try:
        wait(lambda: members(production) == registered, 30, "the first consumer's events")
        stop = standby_running(standby)
        try:
            wait(lambda: len(queue_consumers(production)) == 2, 10, "the standby's subscription")
            assert sorted(queue_consumers(production)) == [False, True]
            registered += register(http, 6000)
            support.relay_all(production)
            # The first dies in the middle of the batch, holding unacknowledged events.
            wait(lambda: members(production) >= BATCH + 10, 20, "the second batch")
            assert standby.stats.applied == 0, "the standby applied events while the first ran"
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            assert members(production) < 2 * BATCH, "the first finished before it was killed"
            registered += register(http, 7000)
            support.relay_all(production)
            wait(lambda: members(production) == registered, 30, "the standby's takeover")
            time.sleep(1.0)  # anything left would show now
            assert queue_consumers(production) == [True]
        finally:
            stop()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()

    applied = inbox(production)
    assert len(applied) == len(set(applied)) == events_for_pairing(production)
    assert members(production) == registered == 3 * BATCH
    with production.rt("pairing").db.session() as s:
        replicas = s.scalars(select(MemberReplica)).all()
    assert sum(len(r.communities) for r in replicas) == registrations(http)
    assert standby.stats.applied > 0  # the standby took over ...
    assert standby.stats.applied < len(applied)  # ... what the first had not applied
    assert standby.stats.dead == 0
    assert time.monotonic() - started < 60


def registrations(http: Any) -> int:
    """Community registrations registration holds, every state counted."""
    result: int = support.stats(http, "registration")["registrations"]
    return result


def standby_running(consumer: Any) -> Any:
    """Run ``consumer`` in a thread; the function that stops it."""
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    thread.start()

    def stopping() -> None:
        stop.set()
        thread.join(10)

    return stopping
