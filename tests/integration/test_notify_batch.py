"""Sending in batches (services/notify/batch.py), on both backends: each message once, by
the same rules as one at a time, whatever happens to the worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from services.notify import batch
from services.notify.bulk import HAND_OVER, hand_over
from services.notify.channels.base import Limit
from services.notify.history import STALE_DISPATCH
from services.notify.models import Notification, NotificationEvent, ProviderHealth
from services.notify.policy import STRANDED_SENDING
from shared.clock import SimulatedClock
from shared.config import CAMPAIGN_TZ
from shared.db import outbox_table
from tests.integration.notify_support import (
    FakeProvider,
    dispatched,
    drain,
    file_sender,
    make_sender,
    sms_lines,
    sweep,
)
from tests.integration.test_notify_send_rules import add_member, queue

HERE = Path(__file__).parent
ROOT = HERE.parents[1]


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """A few messages make several batches (claims pipelined with the previous calls)."""
    monkeypatch.setattr(batch, "BATCH", 4)


def start(backend: Any) -> SimulatedClock:
    clock = SimulatedClock(datetime(2016, 7, 4, 10, tzinfo=CAMPAIGN_TZ))
    backend.rt("notify").clock = clock
    return clock


def members(backend: Any, count: int) -> list[uuid.UUID]:
    return [add_member(backend, phone=f"1391234{i:04d}") for i in range(count)]


def queued(backend: Any, recipients: list[uuid.UUID], slot: str = "-") -> list[uuid.UUID]:
    with dispatched():
        return [queue(backend, m, f"{slot}{i}") for i, m in enumerate(recipients)]


def statuses(backend: Any) -> dict[str, int]:
    with backend.rt("notify").db.session() as session:
        return dict(
            session.execute(
                select(Notification.status, func.count()).group_by(Notification.status)
            ).all()
        )


def test_a_batch_sends_each_message_once_with_its_history_event_and_health(
    backend: Any,
) -> None:
    rt = backend.rt("notify")
    start(backend)
    ids = queued(backend, members(backend, 10))
    provider = FakeProvider()
    sender = make_sender(backend, provider, sms_daily_cap=0)

    outcomes = batch.send_many(ids, rt, sender)

    assert {i: o.status for i, o in outcomes.items()} == {i: "sent" for i in ids}
    assert sorted(s.out_id for s in provider.accepted) == sorted(map(str, ids))
    assert statuses(backend) == {"sent": 10}
    with rt.db.session() as session:
        for notification_id in ids:
            history = session.scalars(
                select(NotificationEvent.status)
                .where(NotificationEvent.notification_id == notification_id)
                .order_by(NotificationEvent.id)
            ).all()
            assert history == ["queued", "sending", "sent"]
        found = session.get(Notification, ids[0])
        assert found is not None and found.attempts == 1 and found.tried == ["fake"]
        assert found.provider_ref == f"fake:{ids[0]}" and found.segments >= 1
        bodies = session.scalars(select(outbox_table(rt.db.metadata).c.body)).all()
        health = session.get(ProviderHealth, "fake")
    sent = [json.loads(b) for b in bodies if '"notification.sent"' in b]
    assert sorted(e["payload"]["notification_id"] for e in sent) == sorted(map(str, ids))
    assert health is not None and health.sent == 10

    # Again: nothing is sent twice.
    again = batch.send_many(ids, rt, sender)
    assert {o.status for o in again.values()} == {"sent"} and len(provider.accepted) == 10


def test_the_cap_and_the_limits_count_the_batchs_own_messages(backend: Any) -> None:
    """Two messages of one batch to one member are counted against each other, as if
    they had been sent one after the other."""
    rt = backend.rt("notify")
    start(backend)
    (capped, limited) = members(backend, 2)
    ids = queued(backend, [capped] * 3, slot="cap")
    provider = FakeProvider()
    outcomes = batch.send_many(ids, rt, make_sender(backend, provider, sms_daily_cap=2))
    assert sorted(o.status for o in outcomes.values()) == ["sent", "sent", "suppressed"]
    assert len(provider.accepted) == 2

    one_a_day = (Limit("number", timedelta(days=1), 1),)
    first, second = FakeProvider("first", limits=one_a_day), FakeProvider("second")
    sender = make_sender(backend, first, second, sms_daily_cap=0)
    ids = queued(backend, [limited] * 2, slot="limit")
    outcomes = batch.send_many(ids, rt, sender)
    assert [o.status for o in outcomes.values()] == ["sent", "sent"]
    assert len(first.accepted) == 1 and len(second.accepted) == 1


def test_failed_calls_retry_fail_over_and_every_message_goes_once(backend: Any) -> None:
    rt = backend.rt("notify")
    clock = start(backend)
    ids = queued(backend, members(backend, 12))
    first = FakeProvider("first", timeouts=0.5, seed=7, clock=clock)
    second = FakeProvider("second", clock=clock)
    sender = make_sender(backend, first, second, sms_daily_cap=0, retry_delay=2.0)

    outcomes = batch.send_many(ids, rt, sender)
    retry = [i for i, o in outcomes.items() if o.status == "retry"]
    assert retry and all(outcomes[i].retry_in for i in retry)
    # What the batch task does with them: each comes back as its own send task, later.
    clock.advance(timedelta(seconds=max(outcomes[i].retry_in or 0.0 for i in retry)))
    assert drain(backend, sender, list(retry), clock=clock) == {"sent": len(retry)}
    accepted = Counter(s.out_id for s in first.accepted + second.accepted)
    assert sorted(accepted) == sorted(map(str, ids)) and set(accepted.values()) == {1}
    assert statuses(backend) == {"sent": 12}


def test_two_batch_workers_on_the_same_messages_call_the_provider_once_each(
    backend: Any,
) -> None:
    rt = backend.rt("notify")
    start(backend)
    ids = queued(backend, members(backend, 12))
    provider = FakeProvider()
    sender = make_sender(backend, provider, sms_daily_cap=0)
    results: list[dict[uuid.UUID, Any]] = []
    ready = threading.Barrier(2)

    def worker() -> None:
        ready.wait(10)
        results.append(batch.send_many(ids, rt, sender))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 2
    accepted = Counter(s.out_id for s in provider.accepted)
    assert sorted(accepted) == sorted(map(str, ids)) and set(accepted.values()) == {1}
    assert statuses(backend) == {"sent": 12}
    for notification_id in ids:  # one of them sent it; the other stood back or saw it sent
        assert {r[notification_id].status for r in results} <= {"sent", "busy"}


def test_a_worker_killed_in_the_middle_of_a_batch_sends_nothing_twice(backend: Any) -> None:
    start(backend)
    ids = queued(backend, members(backend, 10))
    worker = subprocess.run(
        [sys.executable, str(HERE / "notify_killed_batch.py"), "3", *map(str, ids)],
        env={**os.environ, **backend.env, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        capture_output=True,
        timeout=120,
    )
    assert worker.returncode == -9, worker.stderr.decode()[-2000:]
    taken = {json.loads(line)["out_id"] for line in sms_lines(backend)}
    assert len(taken) >= 3  # the provider took some (others of the batch were in flight)
    found = statuses(backend)
    assert found.get("sending", 0) >= len(taken) and "sent" not in found  # none recorded

    # Once stranded, the sweep hands them over; the provider is asked before any resend.
    later = datetime.now(UTC) + max(STRANDED_SENDING, STALE_DISPATCH)
    backend.rt("notify").clock = SimulatedClock(later)
    sender = file_sender(backend, quiet_start=None, quiet_end=None, sms_daily_cap=0)
    with dispatched() as handed:
        sweep(backend)
        assert sorted(handed) == sorted(ids)
        outcomes = drain(backend, sender, handed)
    assert outcomes.get("reconciled", 0) == len(taken)
    assert outcomes == {"reconciled": len(taken), "sent": 10 - len(taken)} or outcomes == {
        "reconciled": len(taken)
    }
    lines = Counter(json.loads(line)["out_id"] for line in sms_lines(backend))
    assert sorted(lines) == sorted(map(str, ids)) and set(lines.values()) == {1}
    assert statuses(backend) == {"sent": 10}


def test_the_dispatch_hands_messages_over_in_batches_when_it_can() -> None:
    class Both:
        def __init__(self) -> None:
            self.one: list[uuid.UUID] = []
            self.batches: list[list[uuid.UUID]] = []

        def __call__(self, notification_id: uuid.UUID) -> None:
            self.one.append(notification_id)

        def many(self, notification_ids: Any) -> None:
            self.batches.append(list(notification_ids))

    ids = [uuid.uuid4() for _ in range(HAND_OVER + 1)]
    both = Both()
    hand_over(both, ids)
    assert both.one == [] and [len(b) for b in both.batches] == [HAND_OVER, 1]
    one_by_one: list[uuid.UUID] = []
    hand_over(one_by_one.append, ids)
    assert one_by_one == ids


def test_a_call_that_waited_too_long_for_a_thread_is_not_made_but_tried_again(
    backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call that starts long after its claim could meet the sweep's reconciliation,
    which takes a message ``sending`` for two minutes for stranded and sends it again: it
    is given up instead, and the message goes again later, once (review finding)."""
    rt = backend.rt("notify")
    start(backend)
    ids = queued(backend, members(backend, 3))
    provider = FakeProvider()
    sender = make_sender(backend, provider, sms_daily_cap=0)
    monkeypatch.setattr(batch, "LATE", -1.0)

    outcomes = batch.send_many(ids, rt, sender)

    assert provider.accepted == []
    assert all(o.status != "sent" and o.retry_in is not None for o in outcomes.values())
    monkeypatch.setattr(batch, "LATE", 60.0)
    batch.send_many(ids, rt, sender)
    assert sorted(s.out_id for s in provider.accepted) == sorted(map(str, ids))
