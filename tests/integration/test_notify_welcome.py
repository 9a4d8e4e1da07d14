"""A member whose report-in is confirmed hears one welcome, whatever happens to the worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from services.notify.history import STALE_DISPATCH
from services.notify.models import Notification
from services.notify.policy import STRANDED_SENDING
from shared.clock import SimulatedClock
from tests import support
from tests.integration.notify_support import dispatched, drain, file_sender, sms_lines, sweep

HERE = Path(__file__).parent
ROOT = HERE.parents[1]


@pytest.fixture
def http(backend: Any) -> Any:
    support.load_sample_directory(backend)
    with support.client(support.issue_token(backend, "admin", "city")) as c:
        yield c


def register_and_confirm(backend: Any, http: Any, seed: int, confirm: int = 2) -> str:
    """Register a member, confirm ``confirm`` of their registrations, and let notify hear it."""
    created = http.post("/api/v1/members", json=support.member_body(seed)).json()
    ids = [r["id"] for r in created["registrations"]][:confirm]
    if ids:
        assert http.post("/api/v1/registrations/confirm", json={"ids": ids}).status_code == 200
    before = support.stats(http, "notify")["events_applied"]
    expected = before + support.relay_all(backend)  # notify hears every event registration sends
    notify = support.consumer(backend, "notify")
    assert support.run_consumers(
        [notify],
        until=lambda: support.stats(http, "notify")["events_applied"] >= expected,
        settle=0.3,
    )
    member_id: str = created["id"]
    return member_id


def welcomes(backend: Any) -> list[Notification]:
    with backend.rt("notify").db.session() as session:
        return list(session.scalars(select(Notification).where(Notification.kind == "welcome")))


def test_a_member_confirmed_in_both_communities_gets_exactly_one_welcome(
    backend: Any, http: Any
) -> None:
    with dispatched() as queue:
        member_id = register_and_confirm(backend, http, seed=1)
        assert len(queue) == 1
        drain(backend, file_sender(backend, quiet_start=None, quiet_end=None), queue)

    (line,) = sms_lines(backend)
    sms = json.loads(line)
    assert sms["kind"] == "welcome" and "*" in sms["to"]
    assert "社区" in sms["text"]  # the two communities, by name
    (message,) = welcomes(backend)
    assert message.status == "sent" and str(message.member_id) == member_id
    history = http.get("/api/v1/notifications", params={"member_id": member_id}).json()
    assert [h["status"] for h in history[0]["history"]] == ["queued", "sending", "sent"]


def test_a_registered_member_not_yet_confirmed_gets_no_welcome(backend: Any, http: Any) -> None:
    with dispatched() as queue:
        register_and_confirm(backend, http, seed=2, confirm=0)
    assert queue == [] and welcomes(backend) == []


def test_a_worker_killed_after_the_provider_accepted_does_not_send_twice(
    backend: Any, http: Any
) -> None:
    with dispatched() as queue:
        register_and_confirm(backend, http, seed=3, confirm=1)
    (notification_id,) = queue

    worker = subprocess.run(
        [sys.executable, str(HERE / "notify_killed_sender.py"), str(notification_id)],
        env={**os.environ, **backend.env, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        capture_output=True,
        timeout=60,
    )
    assert worker.returncode == -9, worker.stderr.decode()[-2000:]
    assert len(sms_lines(backend)) == 1  # the provider took it ...
    (message,) = welcomes(backend)
    assert message.status == "sending"  # ... and the worker died before recording it

    # The task is redelivered at once (acks_late): the send may still be live, so it waits.
    sender = file_sender(backend, quiet_start=None, quiet_end=None)
    assert drain(backend, sender, queue=[message.id]) == {"busy": 1}
    # Once stranded, the sweep hands it over again and it reconciles by the out-id.
    later = datetime.now(UTC) + max(STRANDED_SENDING, STALE_DISPATCH)
    backend.rt("notify").clock = SimulatedClock(later)
    with dispatched() as queue:
        sweep(backend)
        assert queue == [message.id]
        assert drain(backend, sender, queue) == {"reconciled": 1}
    assert len(sms_lines(backend)) == 1
    (message,) = welcomes(backend)
    assert message.status == "sent" and message.provider == "file"
