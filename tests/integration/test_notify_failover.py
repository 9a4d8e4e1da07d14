"""Exactly once through retries and failover, on both backends."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from services.notify.messages import Recipient, queue_message
from services.notify.models import Notification, ProviderHealth
from shared.clock import SimulatedClock
from shared.config import CAMPAIGN_TZ
from tests.integration.notify_support import FakeProvider, dispatched, drain, make_sender
from tests.integration.test_notify_send_rules import add_member

MESSAGES = 200


def test_with_the_first_provider_timing_out_30_percent_every_message_goes_once(
    backend: Any,
) -> None:
    rt = backend.rt("notify")
    rt.clock = SimulatedClock(datetime(2016, 7, 4, 10, tzinfo=CAMPAIGN_TZ))
    members = [add_member(backend, phone=f"1381234{i:04d}") for i in range(20)]
    # A timeout is ambiguous: the first provider took some of the timed-out SMS anyway.
    first = FakeProvider("first", timeouts=0.3, accept_on_timeout=True, seed=626)
    second = FakeProvider("second")
    sender = make_sender(backend, first, second, sms_daily_cap=0, failover_after=3)
    with dispatched() as queue:
        with rt.uow() as uow:
            for i in range(MESSAGES):
                queue_message(
                    uow,
                    recipient=Recipient.member(members[i % len(members)]),
                    kind="wish_confirmed",
                    subject=str(uuid.UUID(int=i)),
                    slot="-",
                    params={"wish": f"心愿{i}"},
                )
            uow.commit()
        outcomes = drain(backend, sender, queue)

    accepted = Counter(s.out_id for s in first.accepted + second.accepted)
    assert len(accepted) == MESSAGES and set(accepted.values()) == {1}, accepted.most_common(3)
    assert outcomes["retry"] > 0 and second.accepted  # retries happened, and failover
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
    assert statuses == {"sent": MESSAGES}
    assert by_provider == {"first": len(first.accepted), "second": len(second.accepted)}
    assert health["first"].failed > 0 and health["second"].failed == 0
