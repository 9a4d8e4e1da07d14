"""Routing on the bus: which keys each service binds, and the queues of a deployment."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from shared.bus import (
    EVENTS,
    binding_keys,
    deployment_queues,
    direct_exchange,
    listened_to,
    routing_key,
)
from shared.config import ConfigError, Settings, load
from shared.events import CATALOGUE, TokensRevoked


def deployment(home: Path, district: str, name: str | None = None) -> Settings:
    env = {"SERVICEMONTH_HOME": str(home), "SERVICEMONTH_DISTRICT": district}
    if name is not None:
        env["SERVICEMONTH_DEPLOYMENT"] = name
    return load(env)


def test_routing_key_is_the_district_then_the_event_type() -> None:
    assert routing_key("410303", "member.registered") == "410303.member.registered"


@pytest.mark.parametrize(
    ("district", "heard"),
    [("410303", "410303"), ("410300", "*")],
    ids=["a district its own district only", "the city every district"],
)
def test_a_deployment_binds_its_district_s_events(district: str, heard: str) -> None:
    patterns = ["member.*", "registration.*", "directory.*", "auth.revoked"]
    assert binding_keys("pairing", district) == [f"{heard}.{p}" for p in patterns]


@pytest.mark.parametrize("service", ["pairing", "notify"])
def test_the_city_leaves_the_districts_deployed_apart_to_them_but_still_counts_them(
    service: str,
) -> None:
    """A member living in 410305, which runs its own deployment, is paired and told there:
    the city's pairing and notify do not hear her district's events; its reporting does."""
    apart = ("410303", "410305")
    keys = binding_keys(service, "410300", apart)

    def heard(district: str, event_type: str) -> bool:
        return any(matches(routing_key(district, event_type), k) for k in keys)

    assert not heard("410305", "member.registered") and not heard("410303", "member.registered")
    assert heard("410304", "member.registered"), "a district without a deployment: the city's"
    assert heard("410300", "auth.revoked")
    reporting = binding_keys("reporting", "410300", apart)
    assert any(matches(routing_key("410305", "member.registered"), k) for k in reporting)


def test_separate_districts_are_the_city_s_alone_and_luoyang_s(tmp_path: Path) -> None:
    city = {"SERVICEMONTH_HOME": str(tmp_path), "SERVICEMONTH_DISTRICT": "410300"}
    assert load(
        city | {"SERVICEMONTH_SEPARATE_DISTRICTS": " 410303, 410305"}
    ).common.separate_districts == ("410303", "410305")
    for bad in ("410300", "110105", "410303,410303"):
        with pytest.raises(ConfigError, match="SERVICEMONTH_SEPARATE_DISTRICTS"):
            load(city | {"SERVICEMONTH_SEPARATE_DISTRICTS": bad})
    district = city | {"SERVICEMONTH_DISTRICT": "410303"}
    with pytest.raises(ConfigError, match="SERVICEMONTH_SEPARATE_DISTRICTS: only the city"):
        load(district | {"SERVICEMONTH_SEPARATE_DISTRICTS": "410305"})


def matches(key: str, pattern: str) -> bool:
    """AMQP topic matching for the patterns used here (``*`` is one word, no ``#``)."""
    words, parts = key.split("."), pattern.split(".")
    if len(words) != len(parts):
        return False
    return all(p in ("*", w) for w, p in zip(words, parts, strict=True))


@pytest.mark.parametrize("district", ["410300", "410305"])
def test_reporting_binds_every_event_its_projections_read_and_revocations_and_nothing_else(
    district: str,
) -> None:
    from services.reporting.replay import FOLDS

    keys = binding_keys("reporting", district)

    def heard(key: str) -> bool:
        return any(matches(key, k) for k in keys)

    types = {cls.TYPE for cls in CATALOGUE.values()}
    expected = {c.TYPE for c in FOLDS} | {TokensRevoked.TYPE}
    assert {t for t in types if heard(routing_key("410305", t))} == expected
    other_district = heard(routing_key("410303", "member.registered"))
    assert other_district == (district == "410300"), "a district deployment hears its own only"


def test_notify_hears_the_report_generated_event_by_its_full_name() -> None:
    assert "*.report.generated" in binding_keys("notify", "410300")
    assert "410303.report.generated" in binding_keys("notify", "410303")


def test_registration_listens_to_nothing() -> None:
    assert binding_keys("registration", "410303") == []


def test_deployment_queues_are_named_by_deployment_and_service(tmp_path: Path) -> None:
    names = {queue.name for queue in deployment_queues(deployment(tmp_path, "410303"))}

    assert names == {
        "servicemonth.410303.pairing.events",
        "servicemonth.410303.notify.events",
        "servicemonth.410303.reporting.events",
        "servicemonth.410303.registration.dead",
        "servicemonth.410303.pairing.dead",
        "servicemonth.410303.notify.dead",
        "servicemonth.410303.reporting.dead",
    }


def test_a_named_deployment_uses_its_name_not_its_district(tmp_path: Path) -> None:
    names = {q.name for q in deployment_queues(deployment(tmp_path, "410303", "xigong-test"))}

    assert "servicemonth.xigong-test.pairing.events" in names
    assert not any("410303" in name for name in names)


def test_event_queues_are_bound_to_the_events_exchange_with_the_service_keys(
    tmp_path: Path,
) -> None:
    queues = {q.name: q for q in deployment_queues(deployment(tmp_path, "410300"))}

    pairing = queues["servicemonth.410300.pairing.events"]
    assert {(b.exchange.name, b.routing_key) for b in pairing.bindings} == {
        (EVENTS.name, "*.member.*"),
        (EVENTS.name, "*.registration.*"),
        (EVENTS.name, "*.directory.*"),
        (EVENTS.name, "*.auth.revoked"),
        ("servicemonth.410300.direct", "servicemonth.410300.pairing.events"),  # replays
    }
    assert pairing.durable
    assert not pairing.auto_delete


def test_event_queues_are_quorum_queues_with_one_active_consumer_dead_lettering_to_their_own(
    tmp_path: Path,
) -> None:
    queues = {q.name: q for q in deployment_queues(deployment(tmp_path, "410303", "d410303"))}

    assert queues["servicemonth.d410303.notify.events"].queue_arguments == {
        "x-queue-type": "quorum",
        "x-single-active-consumer": True,
        "x-dead-letter-exchange": "servicemonth.d410303.direct",
        "x-dead-letter-routing-key": "servicemonth.d410303.notify.dead",
        "x-delivery-limit": 20,
    }
    assert queues["servicemonth.d410303.notify.dead"].queue_arguments == {"x-queue-type": "quorum"}


def test_dead_letter_queues_are_routed_by_their_own_name_on_the_deployments_exchange(
    tmp_path: Path,
) -> None:
    dead = [q for q in deployment_queues(deployment(tmp_path, "410300")) if q.name.endswith("dead")]

    assert len(dead) == 4
    for queue in dead:
        assert queue.exchange is not None
        assert queue.exchange.name == direct_exchange("410300").name == "servicemonth.410300.direct"
        assert queue.routing_key == queue.name
        assert queue.durable


def lone_consumer(handler: Any) -> tuple[Any, Any, list[bool], list[dict[str, Any]]]:
    """A pairing consumer whose one handler is ``handler`` over a unit of work that does
    nothing, one message it may be handed, what was acknowledged and dead-lettered."""
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from shared.consumer import EventConsumer
    from shared.events import CommunityChanged, envelope_for

    class UoW:
        def __enter__(self) -> UoW:
            return self

        def __exit__(self, *_: object) -> None:
            pass

        def first_time(self, _: object) -> bool:
            return True

        def commit(self) -> None:
            pass

    published: list[dict[str, Any]] = []
    consumer = EventConsumer(
        "pairing", load({"SERVICEMONTH_HOME": "/tmp/x"}), {CommunityChanged: [handler]},
        lambda _env: UoW(), retry_delays=(0.0,),  # type: ignore[arg-type,return-value]
    )  # fmt: skip
    consumer._dead_producer = SimpleNamespace(publish=lambda *a, **kw: published.append(kw))  # type: ignore[assignment]
    body = envelope_for(
        CommunityChanged(code="410303001001", name="王城社区", district="410303"),
        district="410303", campaign="c", producer="t", occurred_at=datetime.now(UTC),
    ).model_dump_json()  # fmt: skip
    acked: list[bool] = []
    message = SimpleNamespace(
        body=body, headers={}, delivery_info={"routing_key": "k"}, delivery_tag="1",
        content_type="application/json", content_encoding="utf-8", ack=lambda: acked.append(True),
    )  # fmt: skip
    return consumer, message, acked, published


def test_a_failing_handler_is_dead_lettered_without_the_sql_parameters(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Boom(Exception):
        pass

    def handler(*_: object) -> None:
        raise Boom("insert failed\n[parameters: ('13812348000', '410302195001010015')]")

    consumer, message, acked, published = lone_consumer(handler)
    consumer.on_message(None, message)
    reason = str(published[0]["headers"]["x-dead-reason"])
    assert reason == "Boom: insert failed"
    assert acked == [True]
    assert "13812348000" not in caplog.text and "410302195001010015" not in caplog.text


def test_an_event_waits_for_its_database_however_long_it_is_down_and_is_never_dead_lettered() -> (
    None
):
    """Found by the chaos month: PostgreSQL restarting for longer than the retries (about
    6 s) sent every event arriving meanwhile to the dead-letter queue."""
    import sqlite3
    import threading

    from sqlalchemy.exc import OperationalError

    from shared.events import CommunityChanged

    calls: list[int] = []

    def handler(*_: object) -> None:
        calls.append(1)
        if len(calls) <= 8:  # more than the retries: the database restarts
            raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    consumer, message, acked, published = lone_consumer(handler)
    consumer.outage_wait = 0.0
    consumer.on_message(None, message)
    assert (len(calls), acked, published) == (9, [True], [])
    assert consumer.stats.applied == 1

    # a database error that is no outage (a table missing) is retried, then dead-lettered
    def broken(*_: object) -> None:
        raise OperationalError("SELECT 1", {}, sqlite3.OperationalError("no such table: x"))

    consumer.handlers = {CommunityChanged.TYPE: [broken]}
    consumer.on_message(None, message)
    assert len(published) == 1 and acked == [True, True]
    published.clear()

    # stopped while the database is still down: left unacknowledged, to come again
    consumer.handlers = {CommunityChanged.TYPE: [handler]}
    calls.clear()
    consumer.outage_wait = 0.05
    stopper = threading.Timer(0.2, consumer._stop.set)
    stopper.start()
    consumer.on_message(None, message)
    stopper.join()
    assert (acked, published) == ([True, True], [])


def test_events_a_service_subscribes_to_are_listened_to_and_notifications_are_not() -> None:
    heard = {t for t in {cls.TYPE for cls in CATALOGUE.values()} if listened_to(t)}
    assert {"member.registered", "wish.claimed", "report.generated", "team.joined"} <= heard
    assert not heard & {"notification.sent", "notification.delivered", "notification.failed"}


def batch_consumer(tmp_path: Path, poison: str = "") -> tuple[Any, Any, list[dict[str, object]]]:
    """A pairing consumer over a SQLite inbox whose one handler records each community it
    applies (and fails on ``poison``); the table it writes, and what it dead-letters."""
    from sqlalchemy import Column, String, Table

    from shared.clock import SystemClock
    from shared.consumer import EventConsumer
    from shared.db import Database, UnitOfWork, service_metadata
    from shared.events import CommunityChanged

    metadata = service_metadata()
    applied = Table("applied", metadata, Column("code", String(12), primary_key=True))
    db = Database(f"sqlite:///{tmp_path / 'pairing.db'}", metadata)
    metadata.create_all(db.engine)

    def handler(event: CommunityChanged, _envelope: object, uow: UnitOfWork) -> None:
        if event.code == poison:
            raise RuntimeError("cannot apply it")
        uow.session.execute(applied.insert().values(code=event.code))

    consumer = EventConsumer(
        "pairing", load({"SERVICEMONTH_HOME": str(tmp_path)}), {CommunityChanged: [handler]},
        lambda env: UnitOfWork(db, producer="t", campaign="c", clock=SystemClock(),
                               correlation_id=env.id),
        retry_delays=(0.0,),
    )  # fmt: skip
    published: list[dict[str, object]] = []
    consumer._dead_producer = SimpleNamespace(publish=lambda *a, **kw: published.append(kw))  # type: ignore[assignment]
    return consumer, (db, applied), published


def community_messages(codes: list[str], acked: list[str]) -> list[Any]:
    from datetime import UTC, datetime

    from shared.events import CommunityChanged, envelope_for

    found = []
    for code in codes:
        body = envelope_for(
            CommunityChanged(code=code, name="王城社区", district=code[:6]),
            district=code[:6], campaign="c", producer="t", occurred_at=datetime.now(UTC),
        ).model_dump_json()  # fmt: skip
        message = SimpleNamespace(
            body=body, headers={}, delivery_info={"routing_key": "k"}, delivery_tag=code,
            content_type="application/json", content_encoding="utf-8",
            ack=lambda code=code: acked.append(code),
        )  # fmt: skip
        found.append(message)
    return found


def applied_codes(db_and_table: Any) -> list[str]:
    from sqlalchemy import select

    db, table = db_and_table
    with db.session() as s:
        return sorted(s.scalars(select(table.c.code)))


CODES = [f"410303001{i:03d}" for i in range(1, 7)]


def test_a_batch_is_applied_once_and_a_redelivered_batch_changes_nothing(tmp_path: Path) -> None:
    consumer, table, published = batch_consumer(tmp_path)
    acked: list[str] = []
    messages = community_messages(CODES, acked)
    consumer.on_messages([*messages, messages[0]])  # the first one twice in the batch
    assert applied_codes(table) == CODES
    assert (consumer.stats.applied, consumer.stats.duplicates) == (len(CODES), 1)
    assert acked == [*CODES, CODES[0]]
    consumer.on_messages(messages)  # the same batch again (the consumer died before acking)
    assert applied_codes(table) == CODES
    assert (consumer.stats.applied, consumer.stats.duplicates) == (len(CODES), 1 + len(CODES))
    assert published == []


def test_a_poison_event_in_a_batch_is_dead_lettered_alone_and_the_others_applied(
    tmp_path: Path,
) -> None:
    consumer, table, published = batch_consumer(tmp_path, poison=CODES[2])
    acked: list[str] = []
    messages = community_messages(CODES, acked)
    invalid = SimpleNamespace(**{**vars(messages[0]), "body": b"{not json", "delivery_tag": "x"})
    invalid.ack = lambda: acked.append("invalid")
    consumer.on_messages([*messages[:4], invalid, *messages[4:]])
    assert applied_codes(table) == [c for c in CODES if c != CODES[2]]
    assert consumer.stats.dead == 2 and consumer.stats.applied == len(CODES) - 1
    reasons = sorted(str(p["headers"]["x-dead-reason"]) for p in published)  # type: ignore[index]
    assert reasons[0].startswith("RuntimeError: cannot apply it")
    assert reasons[1].startswith("not JSON")
    assert sorted(acked) == sorted([*CODES, "invalid"])


def test_consecutive_events_of_a_run_handler_are_handed_to_it_together_in_order(
    tmp_path: Path,
) -> None:
    """A table's run handler (reporting's fold) gets each run of consecutive events of its
    types at once, in delivery order, the table's other handlers each event between; a
    duplicate is in no run; one event alone is a run of one."""
    from datetime import UTC, datetime

    from shared.clock import SystemClock
    from shared.consumer import EventConsumer
    from shared.db import Database, UnitOfWork, service_metadata
    from shared.events import CommunityChanged, UnitChanged, envelope_for
    from shared.messagebus import EventTable

    seen: list[list[str]] = []

    def run(items: Any, uow: UnitOfWork) -> None:
        seen.append([event.code for event, _ in items])

    def unit(event: UnitChanged, _envelope: object, uow: UnitOfWork) -> None:
        seen.append([f"unit {event.code}"])

    metadata = service_metadata()
    db = Database(f"sqlite:///{tmp_path / 'reporting.db'}", metadata)
    metadata.create_all(db.engine)
    table = EventTable().in_runs(run, CommunityChanged).on(UnitChanged, unit)
    consumer = EventConsumer(
        "reporting", load({"SERVICEMONTH_HOME": str(tmp_path)}), table,
        lambda env: UnitOfWork(db, producer="t", campaign="c", clock=SystemClock(),
                               correlation_id=env.id),
    )  # fmt: skip
    acked: list[str] = []
    communities = community_messages(CODES[:4], acked)
    unit_body = envelope_for(
        UnitChanged(code="U1", name="市直单位", district="410300", level="city",
                    community_code=CODES[0]),
        district="410300", campaign="c", producer="t", occurred_at=datetime.now(UTC),
    ).model_dump_json()  # fmt: skip
    unit_message = SimpleNamespace(
        **{**vars(communities[0]), "body": unit_body, "delivery_tag": "U1"}
    )
    unit_message.ack = lambda: acked.append("U1")
    consumer.on_messages([*communities[:2], communities[0], unit_message, *communities[2:]])
    assert seen == [CODES[:2], ["unit U1"], CODES[2:4]]
    assert consumer.stats.duplicates == 1
    seen.clear()
    consumer.apply(community_messages([CODES[5]], acked)[0].body)
    assert seen == [[CODES[5]]]


def test_an_event_applied_in_runs_takes_no_other_handler() -> None:
    """A run hands its events to the run handler alone: another handler of theirs would be
    skipped, so the table refuses it, in either order."""
    from shared.events import CommunityChanged
    from shared.messagebus import EventTable

    def run(items: Any, uow: Any) -> None:
        pass

    def other(event: Any, envelope: Any, uow: Any) -> None:
        pass

    with pytest.raises(ValueError, match="applied in runs"):
        EventTable().in_runs(run, CommunityChanged).on(CommunityChanged, other)
    with pytest.raises(ValueError, match="has handlers already"):
        EventTable().on(CommunityChanged, other).in_runs(run, CommunityChanged)
