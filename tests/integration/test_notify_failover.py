"""Exactly once through retries, failover and concurrent send tasks, on both backends."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from services.notify.bulk import queue_message
from services.notify.messages import Recipient
from services.notify.models import Contact, Notification, NotificationEvent, ProviderHealth
from services.notify.recipients import person_of
from services.notify.sending import claim, merge_into_digest, send_notification
from shared.clock import SimulatedClock
from shared.config import CAMPAIGN_TZ
from tests.integration.notify_support import FakeProvider, dispatched, drain, make_sender
from tests.integration.test_notify_send_rules import add_member, queue

MESSAGES = 200


def start(backend: Any) -> SimulatedClock:
    clock = SimulatedClock(datetime(2016, 7, 4, 10, tzinfo=CAMPAIGN_TZ))
    backend.rt("notify").clock = clock
    return clock


def test_with_the_first_provider_timing_out_30_percent_every_message_goes_once(
    backend: Any,
) -> None:
    rt = backend.rt("notify")
    clock = start(backend)
    members = [add_member(backend, phone=f"1381234{i:04d}") for i in range(20)]
    # A timeout is ambiguous: the first provider took some of the timed-out SMS anyway, and
    # like Tencent's receipts its look-up lists a send only a minute later, and sometimes
    # fails. Resending before it has settled would send those twice.
    first = FakeProvider(
        "first",
        timeouts=0.3,
        accept_on_timeout=True,
        seed=626,
        lag=timedelta(seconds=60),
        settle_after=timedelta(seconds=90),
        find_errors=0.2,
        clock=clock,
    )
    second = FakeProvider("second", clock=clock)
    sender = make_sender(backend, first, second, sms_daily_cap=0, failover_after=3, retry_delay=2.0)
    with dispatched() as dispatch:
        with rt.uow() as uow:
            for i in range(MESSAGES):
                queue_message(
                    uow,
                    dispatch=dispatch.append,
                    recipient=Recipient.member(members[i % len(members)]),
                    kind="wish_confirmed",
                    subject=str(uuid.UUID(int=i)),
                    slot="-",
                    params={"wish": f"心愿{i}"},
                )
            uow.commit()
        outcomes = drain(backend, sender, dispatch, clock=clock)

    accepted = Counter(s.out_id for s in first.accepted + second.accepted)
    assert len(accepted) == MESSAGES and set(accepted.values()) == {1}, accepted.most_common(3)
    assert outcomes["retry"] > 0 and outcomes["reconciled"] > 0 and second.accepted
    with rt.db.session() as session:
        statuses = dict(
            session.execute(
                select(Notification.status, func.count()).group_by(Notification.status)
            ).all()
        )
        by_provider = dict(
            session.execute(
                select(Notification.provider, func.count()).group_by(Notification.provider)
            ).all()
        )
        health = {h.name: h for h in session.scalars(select(ProviderHealth))}
        lookups_failed = session.scalar(
            select(func.count())
            .select_from(NotificationEvent)
            .where(NotificationEvent.error.like("look-up at first%"))
        )
    assert statuses == {"sent": MESSAGES}
    assert by_provider == {"first": len(first.accepted), "second": len(second.accepted)}
    assert health["first"].failed > 0 and health["second"].failed == 0
    assert lookups_failed  # a failing look-up waited and asked again; it never crashed


def test_a_failing_look_up_waits_and_never_resends(backend: Any) -> None:
    clock = start(backend)
    member = add_member(backend)
    provider = FakeProvider("flaky", timeouts=1.0, accept_on_timeout=True, clock=clock)
    sender = make_sender(backend, provider, sms_daily_cap=0, retry_delay=2.0)
    with dispatched():
        sent = queue(backend, member, "lookup")
    assert _send(backend, sent, sender) == "retry"  # timed out, but taken
    provider.timeouts, provider.find_errors = 0.0, 1.0
    clock.advance(timedelta(seconds=2))
    with backend.rt("notify").uow() as uow:
        outcome = send_notification(sent, uow, sender)
    assert outcome.status == "retry" and outcome.retry_in and provider.calls == 1
    provider.find_errors = 0.0
    clock.advance(timedelta(seconds=outcome.retry_in))
    with backend.rt("notify").uow() as uow:
        assert send_notification(sent, uow, sender).status == "reconciled"
    assert provider.calls == 1 and len(provider.accepted) == 1


def test_two_send_tasks_for_one_message_call_the_provider_once(backend: Any) -> None:
    rt = backend.rt("notify")
    start(backend)
    member = add_member(backend)
    gate = threading.Event()
    provider = FakeProvider("slow", gate=gate)
    sender = make_sender(backend, provider, sms_daily_cap=0)
    with dispatched():
        message = queue(backend, member, "twice")
    results: dict[str, str] = {}

    def task(name: str, ready: threading.Barrier | None = None) -> None:
        if ready is not None:
            ready.wait(10)
        with rt.uow() as uow:
            results[name] = send_notification(message, uow, sender).status

    # Both start together: one claims and calls, the other loses the claim or finds it
    # sending — and a third arrives while the call is in progress.
    ready = threading.Barrier(2)
    threads = [threading.Thread(target=task, args=(n, ready)) for n in ("a", "b")]
    for t in threads:
        t.start()
    assert provider.entered.wait(10)
    task("during")
    gate.set()
    for t in threads:
        t.join(30)
    assert provider.calls == 1
    # the one that arrived during the call stood back; of the two that raced, one sent and
    # the other stood back too — or, if it only looked once the call was over, saw it sent
    assert results["during"] == "busy", results
    assert sorted((results["a"], results["b"])) in (["busy", "sent"], ["sent", "sent"]), results
    with rt.db.session() as session:
        found = session.get(Notification, message)
        history = session.scalars(
            select(NotificationEvent.status)
            .where(NotificationEvent.notification_id == message)
            .order_by(NotificationEvent.id)
        ).all()
    assert found is not None and found.status == "sent" and found.attempts == 1
    assert history == ["queued", "sending", "sent"]


def test_a_message_merged_while_another_task_sends_it_ends_in_one_state(
    backend: Any,
) -> None:
    rt = backend.rt("notify")
    start(backend)
    member = add_member(backend)
    gate = threading.Event()
    provider = FakeProvider("slow", gate=gate)
    sender = make_sender(backend, provider, sms_daily_cap=1)
    with dispatched():
        message = queue(backend, member, "merge-or-send")
    outcome: list[str] = []
    sending = threading.Thread(
        target=lambda: outcome.append(_send(backend, message, sender)), daemon=True
    )
    with rt.uow() as merger:
        # Task B read the message while it was queued and found the member over the cap...
        stale = merger.session.get(Notification, message)
        assert stale is not None and stale.status == "queued"
        person = person_of(stale, merger, rt.sealer, contact=merger.session.get(Contact, member))
        assert person is not None
        merger.session.commit()  # its read is over; what it read stays in memory
        # ... meanwhile task A claimed it and is in the provider call.
        sending.start()
        assert provider.entered.wait(10)
        assert merge_into_digest(stale, person, merger, sender.rules) is False
    gate.set()
    sending.join(30)
    assert outcome == ["sent"] and provider.calls == 1
    with rt.db.session() as session:
        rows = {n.kind: n for n in session.scalars(select(Notification))}
    assert set(rows) == {"wish_confirmed"}  # no digest was made for it
    assert rows["wish_confirmed"].status == "sent" and rows["wish_confirmed"].merged_into is None

    # The other order: merged first, a stale task's claim is refused.
    with dispatched():
        second = queue(backend, member, "merged-first")
    with rt.uow() as late:
        stale = late.session.get(Notification, second)
        assert stale is not None
        late.session.commit()
        with rt.uow() as merger:
            fresh = merger.session.get(Notification, second)
            assert fresh is not None
            person = person_of(
                fresh, merger, rt.sealer, contact=merger.session.get(Contact, member)
            )
            assert person is not None and merge_into_digest(fresh, person, merger, sender.rules)
        assert claim(stale, late, "slow", "sms", "138****8000") is False
    with rt.db.session() as session:
        merged = session.get(Notification, second)
        assert merged is not None and merged.status == "suppressed" and merged.merged_into
    assert provider.calls == 1


def _send(backend: Any, message: uuid.UUID, sender: Any) -> str:
    with backend.rt("notify").uow() as uow:
        return send_notification(message, uow, sender).status
