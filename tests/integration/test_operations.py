"""The operator's commands, on both backends: a message pairing cannot apply (a poison
message) shows in ``servicemonth status`` and ``dead-letters list`` and stays there; once the
handler is fixed, ``dead-letters replay`` has pairing apply it exactly once; ``drop`` asks,
then removes it. Nothing the commands print holds personal data."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from click.testing import CliRunner, Result
from kombu.messaging import Producer
from sqlalchemy import select

from services import registry
from services.cli import cli
from services.reporting.models import ReportRun
from shared.bus import connect, dead_letter_queue, declare, direct_exchange, event_queue
from shared.config import settings
from shared.consumer import EventConsumer
from shared.db import outbox_table
from shared.events import Envelope, MemberRegistered
from shared.pii import mask_phone
from tests.support import (
    TcpProxy,
    client,
    issue_token,
    load_sample_directory,
    member_body,
    relay_all,
    run_consumers,
    stats,
)

REASON = "RuntimeError: cannot place this member yet"


@dataclass
class Pairing:
    """Pairing's consumer, with a handler that fails on the members in ``poisoned`` and
    counts each member registration that reaches the handlers."""

    backend: Any
    poisoned: set[str] = field(default_factory=set)
    applied: list[str] = field(default_factory=list)

    def guard(self, event: Any, envelope: Envelope, uow: Any) -> None:
        member = str(event.member_id)
        if member in self.poisoned:
            raise RuntimeError("cannot place this member yet")
        self.applied.append(member)

    def consumer(self) -> EventConsumer:
        rt = self.backend.rt("pairing")
        table = dict(registry.handlers("pairing", rt))
        table[MemberRegistered] = [self.guard, *table[MemberRegistered]]
        return EventConsumer(
            "pairing",
            self.backend.settings,
            table,
            lambda env: rt.uow(env.id),
            retry_delays=(0.05,),
        )


@dataclass
class Poisoned:
    """A registered member whose ``member.registered`` pairing dead-lettered."""

    http: Any
    pairing: Pairing
    member_id: str
    event_id: str
    personal: list[str]  # what must never be printed: the phone, ID number, name, sealed


def servicemonth(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input)


def ok(*args: str) -> str:
    result = servicemonth(*args)
    assert result.exit_code == 0, result.output
    return result.output


def pairing_status() -> dict[str, Any]:
    document = json.loads(ok("status", "--json"))
    services = {s["service"]: s for s in document["services"]}
    assert set(services) == {"registration", "pairing", "notify", "reporting"}
    found: dict[str, Any] = services["pairing"]
    return found


def registered_event(backend: Any, member_id: str) -> tuple[str, str]:
    """The id and body of the member's ``member.registered`` in registration's outbox."""
    db = backend.rt("registration").db
    outbox = outbox_table(db.metadata)
    with db.session() as session:
        rows = session.execute(
            select(outbox.c.event_id, outbox.c.body).where(
                outbox.c.routing_key.like("%.member.registered")
            )
        ).all()
    (found,) = [r for r in rows if json.loads(r.body)["payload"]["member_id"] == member_id]
    return found.event_id, found.body


@pytest.fixture
def poisoned(backend: Any) -> Iterator[Poisoned]:
    load_sample_directory(backend)
    with client(issue_token(backend, "admin", "city")) as http:
        # unit and residence in one district: one member.registered, routed there
        body = member_body(3, unit_code="U410303001", residence_community_code="410303001001")
        created = http.post("/api/v1/members", json=body)
        assert created.status_code == 201, created.text
        member_id = created.json()["id"]
        event_id, raw = registered_event(backend, member_id)
        sealed = json.loads(raw)["payload"]["contact"]["sealed"]
        relay_all(backend)

        pairing = Pairing(backend, poisoned={member_id})
        consumer = pairing.consumer()
        assert run_consumers([consumer], until=lambda: consumer.stats.dead == 1, settle=0.5)
        assert stats(http, "pairing")["members"] == 0
        personal = [body["phone"], body["id_number"], body["name"], sealed]
        yield Poisoned(http, pairing, member_id, event_id, personal)


def assert_nothing_personal(output: str, poisoned: Poisoned) -> None:
    for secret in poisoned.personal:
        assert secret not in output


def test_a_poison_message_shows_in_status_and_in_the_list_and_stays_there(
    backend: Any, poisoned: Poisoned
) -> None:
    found = pairing_status()
    assert found["dead_letters"]["count"] == 1
    assert found["dead_letters"]["reasons"] == [{"reason": REASON, "count": 1}]
    assert found["event_queue"]["depth"] == 0  # the queue moved on past it

    listed = json.loads(ok("dead-letters", "list", "pairing", "--json"))
    assert [(x["id"], x["event_type"], x["reason"]) for x in listed] == [
        (poisoned.event_id, "member.registered", REASON)
    ]
    (letter,) = listed
    assert letter["dead_at"] and letter["occurred_at"]
    contact = letter["body"]["payload"]["contact"]
    assert contact["sealed"] == "[sealed]"
    assert contact["phone_masked"] == mask_phone(poisoned.personal[0])
    assert letter["body"]["payload"]["member_id"] == poisoned.member_id

    lines = ok("dead-letters", "list", "pairing")
    assert poisoned.event_id in lines and REASON in lines
    text_status = ok("status")
    assert REASON in text_status
    for output in (json.dumps(listed, ensure_ascii=False), lines, text_status):
        assert_nothing_personal(output, poisoned)

    # listing took nothing off: it is all still there, and listed again the same
    assert pairing_status()["dead_letters"]["count"] == 1
    assert json.loads(ok("dead-letters", "list", "pairing", "--json")) == listed


def test_status_counts_the_unsent_outbox_the_waiting_events_and_the_last_report_run(
    backend: Any, poisoned: Poisoned
) -> None:
    assert poisoned.http.post("/api/v1/members", json=member_body(4)).status_code == 201
    rt = backend.rt("reporting")
    with rt.uow() as uow:
        now = datetime(2016, 7, 4, 8, 0, tzinfo=UTC)
        uow.session.add(
            ReportRun(
                scope="city",
                period_start=now,
                period_end=now,
                slot=now,
                status="done",
                holder="test",
                claimed_at=now,
                finished_at=now,
            )
        )
        uow.commit()

    document = json.loads(ok("status", "--json"))
    services = {s["service"]: s for s in document["services"]}
    registration = services["registration"]
    assert registration["event_queue"] is None  # it listens to nothing
    assert registration["outbox"]["unsent"] >= 1  # the second member's events, not relayed
    assert registration["outbox"]["oldest_unsent_age_seconds"] >= 0
    assert services["notify"]["event_queue"]["depth"] > 0  # nobody consumed notify's queue
    assert services["reporting"]["last_report_run"]["state"] == "done"
    assert services["reporting"]["last_report_run"]["scope"] == "city"
    assert "最近一次报告：done（city）" in ok("status", "reporting")


def test_after_the_fix_replay_has_the_consumer_apply_the_poison_message_exactly_once(
    backend: Any, poisoned: Poisoned
) -> None:
    poisoned.pairing.poisoned.clear()  # the fix
    replayed = ok("dead-letters", "replay", "pairing", "--id", poisoned.event_id)
    assert "重放 1 条死信" in replayed
    assert pairing_status()["dead_letters"]["count"] == 0
    assert pairing_status()["event_queue"]["depth"] == 1

    consumer = poisoned.pairing.consumer()
    http = poisoned.http
    assert run_consumers(
        [consumer], until=lambda: stats(http, "pairing")["members"] == 1, settle=0.5
    )
    assert poisoned.pairing.applied == [poisoned.member_id]
    assert consumer.stats.dead == 0

    # Replaying again finds nothing; the same event delivered again (a replay that died
    # before removing its dead letter) is skipped by the inbox.
    assert "重放 0 条死信" in ok("dead-letters", "replay", "pairing", "--all")
    _, body = registered_event(backend, poisoned.member_id)
    with connect(backend.settings, "pairing") as conn:
        queue = event_queue("pairing", backend.settings)
        Producer(conn.channel()).publish(
            body, exchange=direct_exchange(backend.settings.deployment), routing_key=queue.name
        )
    again = poisoned.pairing.consumer()
    assert run_consumers([again], until=lambda: again.stats.duplicates == 1, settle=0.5)
    assert poisoned.pairing.applied == [poisoned.member_id]
    assert stats(http, "pairing")["members"] == 1


def test_replay_of_an_unknown_id_does_nothing(backend: Any, poisoned: Poisoned) -> None:
    unknown = str(uuid.uuid4())
    refused = servicemonth(
        "dead-letters", "replay", "pairing", "--id", poisoned.event_id, "--id", unknown
    )
    assert refused.exit_code == 1
    assert unknown in refused.output
    assert pairing_status()["dead_letters"]["count"] == 1
    assert pairing_status()["event_queue"]["depth"] == 0


def test_drop_asks_first_and_then_empties_the_dead_letter_queue(
    backend: Any, poisoned: Poisoned
) -> None:
    declined = servicemonth("dead-letters", "drop", "pairing", "--all", input="n\n")
    assert declined.exit_code == 1  # aborted
    assert poisoned.event_id in declined.output
    assert pairing_status()["dead_letters"]["count"] == 1

    confirmed = servicemonth("dead-letters", "drop", "pairing", "--all", input="y\n")
    assert confirmed.exit_code == 0, confirmed.output
    assert "删除 1 条死信" in confirmed.output
    assert pairing_status()["dead_letters"]["count"] == 0
    assert json.loads(ok("dead-letters", "list", "pairing", "--json")) == []
    assert pairing_status()["event_queue"]["depth"] == 0  # dropped, not replayed
    assert "没有死信" in ok("dead-letters", "drop", "pairing", "--all", "--yes")


def test_a_message_that_is_no_event_is_listed_masked_replayed_and_dropped_by_its_id(
    backend: Any, poisoned: Poisoned
) -> None:
    queue = event_queue("pairing", backend.settings)
    with connect(backend.settings, "pairing") as conn:
        Producer(conn.channel()).publish(
            b"call 13812348000 about this",
            exchange=direct_exchange(backend.settings.deployment),
            routing_key=queue.name,
            content_type="application/octet-stream",
            content_encoding="binary",
        )
    consumer = poisoned.pairing.consumer()
    assert run_consumers([consumer], until=lambda: consumer.stats.dead == 1, settle=0.3)

    listed = json.loads(ok("dead-letters", "list", "pairing", "--json"))
    assert len(listed) == 2
    stray = listed[1]
    assert stray["id"].startswith("body-") and stray["event_type"] == "?"
    assert stray["body"] == "call 138****8000 about this"
    assert "13812348000" not in ok("dead-letters", "list", "pairing")

    # still not an event: replayed, it comes straight back with the same id
    ok("dead-letters", "replay", "pairing", "--id", stray["id"])
    again = poisoned.pairing.consumer()
    assert run_consumers([again], until=lambda: again.stats.dead == 1, settle=0.3)
    assert [x["id"] for x in json.loads(ok("dead-letters", "list", "pairing", "--json"))] == [
        poisoned.event_id,
        stray["id"],
    ]

    assert "删除 1 条死信" in ok("dead-letters", "drop", "pairing", "--id", stray["id"], "--yes")
    left = json.loads(ok("dead-letters", "list", "pairing", "--json"))
    assert [x["id"] for x in left] == [poisoned.event_id]


def test_status_says_the_broker_is_away_and_still_counts_the_outbox(
    backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not backend.production:
        pytest.skip("the embedded broker is a folder: it cannot be away")
    load_sample_directory(backend)  # the directory's events wait in registration's outbox
    away = TcpProxy(("127.0.0.1", 5672))  # a port nothing listens on
    monkeypatch.setenv("SERVICEMONTH_BROKER_URL", f"amqp://guest:guest@127.0.0.1:{away.port}/x")
    settings.cache_clear()

    document = json.loads(ok("status", "--json", "registration", "pairing"))
    for found in document["services"]:
        assert "Connection refused" in found["broker_error"]
    assert document["services"][0]["outbox"]["unsent"] > 0
    assert "消息代理不可用" in ok("status")

    refused = servicemonth("dead-letters", "list", "pairing")
    assert refused.exit_code == 1
    assert refused.output.startswith("Error: 消息代理不可用")


def test_a_replay_with_no_event_queue_to_go_to_keeps_the_dead_letter(backend: Any) -> None:
    # registration listens to nothing: it has a dead-letter queue and no event queue
    dead = dead_letter_queue("registration", backend.settings)
    with connect(backend.settings, "registration") as conn:
        declare(conn, backend.settings)
        Producer(conn.channel()).publish(
            b"{}",
            exchange=direct_exchange(backend.settings.deployment),
            routing_key=dead.routing_key,
            headers={"x-dead-reason": "x"},
        )
    refused = servicemonth("dead-letters", "replay", "registration", "--all")
    assert refused.exit_code == 1
    assert "不存在" in refused.output and "未做任何操作" in refused.output
    assert len(json.loads(ok("dead-letters", "list", "registration", "--json"))) == 1
