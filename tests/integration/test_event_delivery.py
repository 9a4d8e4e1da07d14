"""The backbone's delivery promises, on both backends: outbox, inbox, dead letters, routing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from kombu import Producer
from sqlalchemy import select

from shared.bus import EVENTS, connect, declare
from shared.config import load
from shared.consumer import read_dead_letters
from shared.db import inbox_table, outbox_table
from shared.events import CommunityRef, MemberRegistered, NotificationSent, envelope_for
from shared.relay import OutboxRelay
from tests import support

HERE = Path(__file__).parent


@pytest.fixture
def http(backend):  # type: ignore[no-untyped-def]
    support.load_sample_directory(backend)
    with support.client(support.issue_token(backend, "admin", "city")) as c:
        yield c


def all_consumers_have(http, members: int):  # type: ignore[no-untyped-def]
    return lambda: (
        support.stats(http, "pairing")["members"] >= members
        and support.stats(http, "notify")["contacts"] >= members
        and support.stats(http, "reporting")["members"] >= members
    )


def applied_types(backend, service: str) -> list[str]:  # type: ignore[no-untyped-def]
    db = backend.rt(service).db
    inbox = inbox_table(db.metadata)
    with db.session() as session:
        return list(session.scalars(select(inbox.c.event_type)))


def effects(http) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return {
        "pairing": support.stats(http, "pairing")["members"],
        "notify": support.stats(http, "notify")["contacts"],
        "reporting": support.stats(http, "reporting")["members"],
    }


def test_a_rolled_back_registration_publishes_nothing(backend, http) -> None:  # type: ignore[no-untyped-def]
    rt = backend.rt("registration")
    event = MemberRegistered(
        member_id="00000000-0000-0000-0000-000000000001",
        unit_code="U410303001",
        unit_district="410303",
        communities=[
            CommunityRef(
                registration_id="00000000-0000-0000-0000-000000000002",
                community_code="410303001001",
                role="unit",
                district="410303",
            )
        ],
    )
    before = support.stats(http, "registration")["events_pending"]  # the directory's own events
    with rt.uow() as uow:
        uow.emit(event, district="410303")
        # leaving without commit: the event goes with the transaction

    assert support.stats(http, "registration")["events_pending"] == before
    assert support.relay_all(backend) == before
    consumers = [support.consumer(backend, s) for s in support.CONSUMERS]
    support.run_consumers(consumers, until=lambda: False, timeout=1.5)
    assert effects(http) == {"pairing": 0, "notify": 0, "reporting": 0}
    for service in support.CONSUMERS:  # the directory's events were applied; no member event was
        applied = applied_types(backend, service)
        assert not [t for t in applied if t.startswith("member.")], (service, applied)


def test_a_committed_registration_has_one_effect_in_each_consumer(backend, http) -> None:  # type: ignore[no-untyped-def]
    for seed in range(3):
        assert http.post("/api/v1/members", json=support.member_body(seed)).status_code == 201
    # The relay died between commit and publish: nothing went out yet.
    assert support.stats(http, "registration")["events_pending"] >= 3
    support.relay_all(backend)
    consumers = [support.consumer(backend, s) for s in support.CONSUMERS]
    assert support.run_consumers(consumers, until=all_consumers_have(http, 3), settle=0.5)
    assert effects(http) == {"pairing": 3, "notify": 3, "reporting": 3}
    assert support.stats(http, "registration")["events_pending"] == 0


def test_a_relay_killed_after_publishing_and_before_marking_has_no_double_effect(
    backend, http
) -> None:  # type: ignore[no-untyped-def]
    assert http.post("/api/v1/members", json=support.member_body(7)).status_code == 201
    dying = OutboxRelay(backend.rt("registration").db, backend.settings, "registration")
    rows = dying.pending()
    assert rows
    assert dying.publish(rows)  # ... and the process dies before mark_sent
    dying.close()

    assert support.relay_all(backend) == len(rows)  # the next relay publishes them again
    consumers = [support.consumer(backend, s) for s in support.CONSUMERS]
    assert support.run_consumers(consumers, until=all_consumers_have(http, 1), settle=1.0)
    assert effects(http) == {"pairing": 1, "notify": 1, "reporting": 1}
    assert sum(c.stats.duplicates for c in consumers) >= len(support.CONSUMERS)


def test_the_same_event_delivered_three_times_has_one_effect(backend, http) -> None:  # type: ignore[no-untyped-def]
    assert http.post("/api/v1/members", json=support.member_body(11)).status_code == 201
    relay = OutboxRelay(backend.rt("registration").db, backend.settings, "registration")
    rows = [row for row in relay.pending() if row[2].endswith(".member.registered")]
    for _ in range(3):
        relay.publish(rows)
    relay.close()
    consumers = [support.consumer(backend, s) for s in support.CONSUMERS]
    assert support.run_consumers(consumers, until=all_consumers_have(http, 1), settle=1.0)
    assert effects(http) == {"pairing": 1, "notify": 1, "reporting": 1}
    assert all(c.stats.applied == len(rows) for c in consumers)
    assert all(c.stats.duplicates == 2 * len(rows) for c in consumers)


def test_a_payload_failing_its_schema_is_dead_lettered_and_the_queue_moves_on(
    backend, http
) -> None:  # type: ignore[no-untyped-def]
    bad = envelope_for(
        MemberRegistered(
            member_id="00000000-0000-0000-0000-0000000000aa",
            unit_code="U410303001",
            unit_district="410303",
            communities=[
                CommunityRef(
                    registration_id="00000000-0000-0000-0000-0000000000ab",
                    community_code="410303001001",
                    role="unit",
                    district="410303",
                )
            ],
        ),
        district="410303",
        campaign="c",
        producer="test",
        occurred_at=backend.rt("registration").clock.now(),
    ).model_dump(mode="json")
    bad["payload"]["communities"][0]["community_code"] = "4103"
    with connect(backend.settings) as conn:
        declare(conn, backend.settings)
        Producer(conn.channel()).publish(
            json.dumps(bad), exchange=EVENTS, routing_key="410303.member.registered"
        )
    assert http.post("/api/v1/members", json=support.member_body(21)).status_code == 201
    support.relay_all(backend)

    pairing = support.consumer(backend, "pairing")
    assert support.run_consumers(
        [pairing], until=lambda: support.stats(http, "pairing")["members"] == 1, settle=0.3
    )
    assert pairing.stats.dead == 1
    with connect(backend.settings) as conn:
        dead = read_dead_letters(conn, "pairing", backend.settings)
    assert len(dead) == 1
    reason = dead[0]["headers"]["x-dead-reason"]
    assert "payload.communities.0.community_code" in reason
    assert json.loads(dead[0]["body"])["payload"]["member_id"].endswith("aa")


def test_a_consumer_killed_before_commit_processes_the_event_exactly_once_after_restart(
    backend, http, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    assert http.post("/api/v1/members", json=support.member_body(31)).status_code == 201
    support.relay_all(backend)
    marker = tmp_path / "received"
    child = subprocess.Popen(
        [sys.executable, str(HERE / "stalling_consumer.py"), str(marker)],
        env={**os.environ, **backend.env},
    )
    try:
        deadline = time.monotonic() + 30
        while not marker.exists() and time.monotonic() < deadline:
            assert child.poll() is None, "the stalling consumer exited early"
            time.sleep(0.05)
        assert marker.exists(), "the stalling consumer never received the event"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert support.stats(http, "pairing")["members"] == 0

    pairing = support.consumer(backend, "pairing")
    assert support.run_consumers(
        [pairing], until=lambda: support.stats(http, "pairing")["members"] == 1, settle=1.0
    )
    assert pairing.stats.duplicates == 0
    assert support.stats(http, "pairing")["events_applied"] == pairing.stats.applied > 0


def test_events_wait_in_the_outbox_while_the_broker_is_down(backend, http) -> None:  # type: ignore[no-untyped-def]
    if not backend.production:
        pytest.skip("the embedded broker is a folder: it cannot be down")
    proxy = support.TcpProxy(("127.0.0.1", 5672))
    url = backend.settings.broker_url().replace("127.0.0.1:5672", f"127.0.0.1:{proxy.port}")
    via_proxy = load({**backend.env, "SERVICEMONTH_BROKER_URL": url})
    relay = OutboxRelay(backend.rt("registration").db, via_proxy, "registration")

    # broker down: the API still accepts registrations, the relay cannot publish
    for seed in range(2):
        assert http.post("/api/v1/members", json=support.member_body(40 + seed)).status_code == 201
    with pytest.raises(Exception):  # noqa: B017 - any connection error
        relay.run_once()
    assert support.stats(http, "registration")["events_pending"] >= 2

    proxy.start()  # the broker is back
    try:
        while relay.run_once():
            pass
    finally:
        relay.close()
        proxy.stop()
    assert support.stats(http, "registration")["events_pending"] == 0
    consumers = [support.consumer(backend, s) for s in support.CONSUMERS]
    assert support.run_consumers(consumers, until=all_consumers_have(http, 2), settle=0.5)
    assert effects(http) == {"pairing": 2, "notify": 2, "reporting": 2}


def test_a_star_matches_one_word_and_a_district_sees_nothing_of_another(backend) -> None:  # type: ignore[no-untyped-def]
    district = load({**backend.env, "SERVICEMONTH_DISTRICT": "410303"})
    from shared.bus import event_queue

    keys = [
        "410303.member.registered",  # pairing and reporting: 410303.member.*
        "410303.member.registered.v2",  # * is one word: nobody
        "410305.member.registered",  # another district: nobody
        "410305.wish.claimed",  # another district: nobody
        "410303.wish.claimed",  # not pairing's; reporting: 410303.wish.*
        "410303.notification.sent",  # nothing reporting projects: nobody
    ]
    with connect(district) as conn:
        declare(conn, district)
        for name in ("pairing", "reporting"):
            event_queue(name, district)(conn.channel()).purge()
        producer = Producer(conn.channel())
        for key in keys:
            producer.publish({"key": key}, exchange=EVENTS, routing_key=key)
        received = {}
        for name in ("pairing", "reporting"):
            simple = conn.SimpleQueue(event_queue(name, district))
            got = []
            while True:
                try:
                    message = simple.get(timeout=0.5)
                except simple.Empty:
                    break
                got.append(message.payload["key"])
                message.ack()
            simple.close()
            received[name] = sorted(got)
    assert received["pairing"] == ["410303.member.registered"]
    assert received["reporting"] == ["410303.member.registered", "410303.wish.claimed"]


def test_an_event_no_service_listens_to_is_published_once_and_marked_sent(backend) -> None:  # type: ignore[no-untyped-def]
    """notify's notification.sent has no subscriber in a deployment: published once and
    marked sent (published ``mandatory`` it came back unroutable and went round the relay
    for ever)."""
    rt = backend.rt("notify")
    with rt.uow() as uow:
        sent = NotificationSent(
            notification_id=uuid.uuid4(), kind="welcome", channel="sms", status="sent"
        )
        uow.emit(sent, district="410303")
        uow.commit()
    assert support.relay_all(backend, "notify") == 1
    outbox = outbox_table(rt.db.metadata)
    with rt.db.session() as s:
        assert s.execute(select(outbox.c.attempts, outbox.c.last_error)).one() == (1, None)
