"""Benchmark: the event pipeline (outbox → relay → broker → three consumers → their commits)
against raw Kombu publishing and consuming the same payloads, in one run.

``N`` (half the city's members, at least 2,000) ``member.registered`` events are written
into registration's outbox the way a roster import writes them
(:func:`services.registration.enrolment.add_members`, members from ``ctx.city``). Then:

1. **relay**: registration's ``servicemonth consume`` process (the outbox relay) is running
   when they commit; timed from the commit to the last row marked sent (``sent_at``);
2. **consumers**: pairing's, notify's and reporting's ``servicemonth consume`` processes
   start with the events waiting in their queues; timed from the first inbox row
   (``processed_at``) until every consumer's inbox holds all ``N`` (polled). Each inbox
   must hold exactly the ``N`` events and each service one replica per member: nothing
   lost, nothing applied twice.

The baseline, on the same broker: Kombu publishes the same bodies with the same routing
keys and publisher confirms to a topic exchange bound to three quorum queues (one
connection, one confirm per message, as the relay), then three processes consume and
acknowledge them (prefetch 200, one ack per message). Both stages are rates in events/s;
end to end is ``N`` over the two stages' times added.

On PostgreSQL + RabbitMQ (when ``ctx`` has them) the target is ≥ 0.5× the baseline's rate
and ≤ 250 MB peak RSS for each worker (the relay, each consumer); on the embedded
backend (SQLite files, the filesystem broker) the figures are reported.

    .venv/bin/python bench/pipeline.py --scale 0.01 [--embedded]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import citygen
import harness
from kombu import Connection, Consumer, Exchange, Producer, Queue
from sqlalchemy import func, select, update

from services import registry
from services.notify.models import Contact
from services.pairing.models import MemberReplica
from services.registration import directory
from services.registration.enrolment import Directory, add_members, validate_member
from services.reporting.models import MemberFact
from services.supervisor import heartbeat_path
from shared import bus
from shared.config import SERVICES, Settings, child_environment, load
from shared.db import inbox_table, outbox_table
from shared.migrations import upgrade
from shared.runtime import Runtime, build

ROOT = Path(__file__).resolve().parent.parent
CONSUMERS = ("pairing", "notify", "reporting")
REPLICAS = {"pairing": MemberReplica, "notify": Contact, "reporting": MemberFact}
RSS_MB = 250
PREFETCH = 200


def events_for(ctx: harness.Context, production: bool = True) -> int:
    """Half the city's members in events (at least 2,000, or one per member of a smaller
    city); a quarter of that embedded, where the figure is reported only (SQLite and the
    filesystem broker are slower)."""
    wanted = int(0.5 * ctx.members())
    return max(min(2_000, ctx.members()), wanted if production else wanted // 4)


# --- the backends -----------------------------------------------------------------------------


def rabbitmqctl(*args: str) -> None:
    ctl = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    subprocess.run([ctl, "-q", *args], check=True, capture_output=True)


def vhost(ctx: harness.Context) -> str:
    """A throw-away RabbitMQ vhost (deleted, with all it holds, when the run ends)."""
    name = f"bench-pipeline-{secrets.token_hex(3)}"
    rabbitmqctl("add_vhost", name)
    rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    ctx._cleanup.append(lambda: rabbitmqctl("delete_vhost", name))
    assert ctx.rabbitmq
    return "/".join(ctx.rabbitmq.split("/")[:3]) + "/" + name  # amqp://user:pw@host:port/


def environment(ctx: harness.Context, production: bool) -> dict[str, str]:
    env = {
        "SERVICEMONTH_HOME": str(ctx.folder("pipeline")),
        "SERVICEMONTH_PII_KEY": secrets.token_hex(32),
        "SERVICEMONTH_LOG_LEVEL": "WARNING",
    }
    if production:
        env["SERVICEMONTH_BROKER_URL"] = vhost(ctx)
        for service in SERVICES:
            env[f"SERVICEMONTH_{service.upper()}_DATABASE_URL"] = ctx.database(service)
    return env


def runtimes(config: Settings) -> dict[str, Runtime]:
    """Every service's runtime, its database migrated; the bus's exchanges and queues
    declared (as any process does when it starts)."""
    found = {}
    for service in SERVICES:
        rt = build(service, registry.metadata(service), config)
        upgrade(service, rt.db)
        found[service] = rt
    with bus.connect(config) as conn:
        bus.declare(conn, config)
    return found


# --- the events -------------------------------------------------------------------------------


def load_directory(city: citygen.City, rt: Runtime) -> None:
    """The city's directory in registration (before any relay runs); its own events are
    not what is measured, and are marked sent."""
    outbox = outbox_table(rt.db.metadata)
    with rt.uow() as uow:
        rows = list(citygen.directory_rows(city))
        table = [list(citygen.DIRECTORY_COLUMNS)]
        table += [[row[c] for c in citygen.DIRECTORY_COLUMNS] for row in rows]
        directory.load(citygen.csv_bytes(table), uow)
        uow.commit()
    with rt.uow() as uow:
        uow.session.execute(update(outbox).values(sent_at=uow.now()))
        uow.commit()


def write_events(city: citygen.City, rt: Runtime, wanted: int) -> tuple[int, int, float]:
    """Register members of ``city`` (in one transaction, committed last) until their
    ``member.registered`` events in the outbox number at least ``wanted``; the events, the
    members and the wall-clock time of the commit."""
    outbox = outbox_table(rt.db.metadata)
    today = min(date.today(), city.campaign[1])
    with rt.uow() as uow:
        known = Directory(uow.session, preload=True)
        chunk: list[Any] = []
        members = 0
        for member in city.members:
            values, errors = validate_member(citygen.member_body(member), known, today)
            assert values is not None, errors
            chunk.append(values)
            members += 1
            # a member has one member.registered per district of their communities (1-3)
            if len(chunk) >= min(1000, max(1, (wanted - len(uow.emitted)) // 3)):
                add_members(chunk, uow, rt.sealer, known)
                chunk = []
                if len(uow.emitted) >= wanted:
                    break
        add_members(chunk, uow, rt.sealer, known)
        events = len(uow.emitted)
        assert events >= wanted, f"the city has too few members for {wanted} events"
        uow.commit()
        committed = time.time()
    with rt.db.session() as session:
        pending = session.scalar(
            select(func.count()).select_from(outbox).where(outbox.c.sent_at.is_(None))
        )
    assert pending == events, (pending, events)
    return events, members, committed


def payloads(rt: Runtime) -> list[tuple[str, str]]:
    """(routing key, body) of the events measured, in outbox order."""
    outbox = outbox_table(rt.db.metadata)
    with rt.db.session() as session:
        rows = session.execute(
            select(outbox.c.routing_key, outbox.c.body)
            .where(outbox.c.routing_key.like("%.member.registered"))
            .order_by(outbox.c.position)
        ).all()
    return [(r.routing_key, r.body) for r in rows]


# --- our pipeline -----------------------------------------------------------------------------


@contextlib.contextmanager
def consume(services: tuple[str, ...], env: dict[str, str]) -> Iterator[dict[str, int]]:
    """``servicemonth consume SERVICE`` for each of ``services``: their pids while they run."""
    procs = {
        s: subprocess.Popen(
            [sys.executable, "-m", "services.cli", "consume", s],
            env=child_environment(env),
            cwd=ROOT,
            start_new_session=True,
        )
        for s in services
    }
    try:
        yield {s: p.pid for s, p in procs.items()}
    finally:
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@contextlib.contextmanager
def peak_rss_each(pids: dict[str, int]) -> Iterator[dict[str, dict[str, float]]]:
    with contextlib.ExitStack() as stack:
        yield {
            s: stack.enter_context(harness.peak_rss(lambda pid=pid: [pid]))
            for s, pid in pids.items()
        }


def wait(until: Any, timeout: float, what: str, every: float = 0.05) -> float:
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() > deadline:
            raise TimeoutError(f"pipeline: timed out waiting for {what}")
        time.sleep(every)
    return time.time()


def relay_stage(
    ctx: harness.Context, rts: dict[str, Runtime], env: dict[str, str], wanted: int
) -> tuple[int, int, float, dict[str, float]]:
    """Events, members, seconds from commit to the last row sent, peak RSS of the relay."""
    reg = rts["registration"]
    outbox = outbox_table(reg.db.metadata)

    def unsent() -> int:
        with reg.db.session() as s:
            count = select(func.count()).select_from(outbox).where(outbox.c.sent_at.is_(None))
            return s.scalar(count) or 0

    with consume(("registration",), env) as pids, peak_rss_each(pids) as rss:
        # the relay is up before the events commit
        beat = heartbeat_path(reg.settings.home, "consume", "registration")
        wait(beat.exists, 60, "the relay to start")
        events, members, committed = write_events(ctx.city, reg, wanted)
        wait(lambda: unsent() == 0, 600, "the relay", every=0.1)
    with reg.db.session() as s:
        last = s.scalar(select(func.max(outbox.c.sent_at)))
    assert last is not None
    return events, members, last.timestamp() - committed, {s: r["mb"] for s, r in rss.items()}


def consumer_stage(
    rts: dict[str, Runtime], env: dict[str, str], events: int, members: int
) -> tuple[float, dict[str, float], dict[str, float]]:
    """Seconds from the first event applied until each consumer applied all ``events``
    (checked: each inbox holds exactly them, each service one replica per member); each
    consumer's own rate (its first to its last inbox row); peak RSS of each."""

    def applied(service: str) -> int:
        db = rts[service].db
        with db.session() as s:
            return s.scalar(select(func.count()).select_from(inbox_table(db.metadata))) or 0

    with consume(CONSUMERS, env) as pids, peak_rss_each(pids) as rss:
        done = wait(
            lambda: all(applied(s) >= events for s in CONSUMERS), 1800, "the consumers", every=0.05
        )
    first = []
    rates = {}
    for service in CONSUMERS:
        db = rts[service].db
        inbox = inbox_table(db.metadata)
        with db.session() as s:
            count, distinct, started, ended = s.execute(
                select(
                    func.count(),
                    func.count(inbox.c.event_id.distinct()),
                    func.min(inbox.c.processed_at),
                    func.max(inbox.c.processed_at),
                )
            ).one()
            replicas = s.scalar(select(func.count()).select_from(REPLICAS[service]))
        assert count == distinct == events, (service, count, distinct, events)
        assert replicas == members, (service, replicas, members)
        first.append(started.timestamp())
        rates[service] = events / max((ended - started).total_seconds(), 1e-3)
    return done - min(first), rates, {s: r["mb"] for s, r in rss.items()}


# --- the baseline: raw Kombu ------------------------------------------------------------------


def raw_names(tag: str) -> tuple[Exchange, list[Queue]]:
    exchange = Exchange(f"bench.{tag}.events", type="topic", durable=True)
    queues = [
        Queue(
            f"bench.{tag}.{service}",
            exchange,
            routing_key="#",
            durable=True,
            queue_arguments={"x-queue-type": "quorum"},
        )
        for service in CONSUMERS
    ]
    return exchange, queues


def connection(url: str, options: dict[str, Any]) -> Connection:
    import shared.fstransport  # noqa: F401 - registers sfs://

    return Connection(url, transport_options=options, heartbeat=0, connect_timeout=5)


def raw_publish(url: str, options: dict[str, Any], tag: str, rows: list[tuple[str, str]]) -> float:
    """Seconds to publish ``rows`` with confirms (the transport's ``confirm_publish``)."""
    exchange, queues = raw_names(tag)
    with connection(url, options) as conn:
        channel = conn.default_channel
        exchange(channel).declare()
        for queue in queues:
            queue(channel).declare()
        producer = Producer(conn.channel(), exchange=exchange)
        started = time.perf_counter()
        for key, body in rows:
            producer.publish(
                body,
                routing_key=key,
                content_type="application/json",
                content_encoding="utf-8",
                delivery_mode=2,
            )
        return time.perf_counter() - started


def raw_consume_main(url: str, options: str, queue_name: str, count: int) -> None:
    """(In a child process.) Consume and acknowledge ``count`` messages of ``queue_name``;
    print the wall-clock times of the first delivery and the last ack."""
    seen: list[float] = []

    def on_message(message: Any) -> None:
        if not seen:
            seen.append(time.time())
        message.ack()
        seen.append(time.time())

    with (
        connection(url, json.loads(options)) as conn,
        Consumer(
            conn,
            [Queue(queue_name, no_declare=True)],
            on_message=on_message,
            prefetch_count=PREFETCH,
        ),
    ):
        while len(seen) <= count:
            conn.drain_events(timeout=60)
    print(json.dumps({"first": seen[0], "last": seen[-1]}))


def raw_consume(url: str, options: dict[str, Any], tag: str, count: int) -> float:
    """Seconds for three processes to consume and acknowledge ``count`` messages each."""
    _, queues = raw_names(tag)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--raw-consume",
                url,
                json.dumps(options),
                q.name,
                str(count),
            ],
            env=child_environment({"PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'bench'}"}),
            stdout=subprocess.PIPE,
            text=True,
        )
        for q in queues
    ]
    times = []
    for p in procs:
        out, _ = p.communicate(timeout=1800)
        assert p.returncode == 0, out
        times.append(json.loads(out.strip().splitlines()[-1]))
    with connection(url, options) as conn:  # the baseline's queues, gone
        for q in queues:
            q(conn.default_channel).delete()
        raw_names(tag)[0](conn.default_channel).delete()
    return max(t["last"] for t in times) - min(t["first"] for t in times)


# --- measure ----------------------------------------------------------------------------------


def run_backend(ctx: harness.Context, production: bool) -> list[harness.Result]:
    env = environment(ctx, production)
    config = load(env)
    rts = runtimes(config)
    name = "PostgreSQL + RabbitMQ" if production else "embedded: SQLite + filesystem broker"
    try:
        wanted = events_for(ctx, production)
        load_directory(ctx.city, rts["registration"])
        events, members, relay_s, relay_rss = relay_stage(ctx, rts, env, wanted)
        consume_s, rates, consumer_rss = consumer_stage(rts, env, events, members)
        rows = payloads(rts["registration"])
        assert len(rows) == events
    finally:
        for rt in rts.values():
            rt.db.dispose()
    url = config.broker_url()
    options = config.broker_options()
    tag = secrets.token_hex(3)
    publish_s = raw_publish(url, options, tag, rows)
    raw_s = raw_consume(url, options, tag, events)

    notes = {
        "end to end": f"{events:,} member.registered events ({members:,} members), {name}",
        "consumers": "each consumer's own rate: "
        + ", ".join(f"{s} {r:,.0f}/s" for s, r in rates.items()),
        "relay": "",
    }
    ours = {"relay": events / relay_s, "consumers": events / consume_s}
    ours["end to end"] = events / (relay_s + consume_s)
    base = {"relay": events / publish_s, "consumers": events / raw_s}
    base["end to end"] = events / (publish_s + raw_s)
    labels = {
        "relay": "relay publish (outbox → broker, confirms)",
        "consumers": "3 consumers apply (broker → inbox + handlers + commit)",
        "end to end": "end to end (outbox → 3 services' commits)",
    }
    results = []
    for stage in ("end to end", "relay", "consumers"):
        path = f"event pipeline, {labels[stage]}" + ("" if production else ", embedded")
        if production:
            row = harness.throughput(path, "events/s", ours[stage], base[stage], 0.5)
        else:  # reported: no target
            ratio = ours[stage] / base[stage]
            row = harness.Result(path, "events/s", ours[stage], base[stage], ratio, "—", None)
        results.append(dataclasses.replace(row, note=notes[stage]))
    if production:
        for service, mb in {**relay_rss, **consumer_rss}.items():
            role = "relay" if service == "registration" else "consumer"
            results.append(
                harness.absolute(
                    f"event pipeline, peak RSS of {service}'s consume ({role})",
                    "MB",
                    mb,
                    at_most=RSS_MB,
                )
            )
    return results


def measure(ctx: harness.Context) -> list[harness.Result]:
    results = []
    if ctx.postgres and ctx.rabbitmq:
        results += run_backend(ctx, production=True)
    results += run_backend(ctx, production=False)
    return results


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--raw-consume":
        raw_consume_main(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--embedded", action="store_true", help="no PostgreSQL nor RabbitMQ")
    args = parser.parse_args()
    ctx = harness.Context(scale=args.scale, seed=args.seed)
    if args.embedded:
        ctx.postgres = ctx.rabbitmq = None
    harness.show(ctx, measure)


if __name__ == "__main__":
    main()
