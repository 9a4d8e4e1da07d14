"""Benchmark: ``servicemonth report rebuild`` at city scale, while the live consumer runs.

A synthetic month (the city's members, ``ctx.members()``, registering with two communities,
their registrations confirmed, pairings made, about 5 service records per member submitted
then verified, in time order: about 11 events per member) is written straight into
reporting's event log, as the live consumer logs it. A first rebuild fills the read models;
their figures are checked against the facts the events carried (counted in Python). Then
the timed rebuild replays the log again into shadow tables and swaps them in, while a thread
applies new events (service records submitted and verified) through the live consumer's
path (:class:`shared.consumer.EventConsumer`, inbox and log included) and times each one.
Afterwards the figures equal those before, plus exactly the live records' hours, and every
event is in.

Rows: events/s of the rebuild (target ≥ 10,000 on PostgreSQL) and the live consumer's
longest wait for one event during it (target ≤ 1 s); SQLite reported alongside.

    .venv/bin/python bench/reporting_rebuild.py [--scale 0.05] [--seed 1] [--embedded]
        [--profile]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import harness
from sqlalchemy import func, insert, select

from services import registry
from services.reporting import figures as fig
from services.reporting.bootstrap import bootstrap
from services.reporting.commands import RebuildReadModels
from services.reporting.models import EventLogEntry, RecordFact
from shared.config import load
from shared.consumer import EventConsumer
from shared.db import is_outage
from shared.events import (
    ActivitySubmitted,
    ActivityVerified,
    CommunityRef,
    Event,
    MemberRegistered,
    PairingMade,
    RegistrationConfirmed,
    envelope_for,
)
from shared.migrations import upgrade
from shared.runtime import Runtime, build

T0 = datetime(2016, 6, 26, 1, 0, tzinfo=UTC)
DISTRICT = "410303"
KINDS = fig.KINDS
RECORDS_PER_MEMBER = 5
LIVE_PAUSE = 0.002  # between two live events: a steady trickle, not a flood


def runtime(home: Path, database_url: str | None) -> Runtime:
    env = {"SERVICEMONTH_HOME": str(home), "SERVICEMONTH_PII_KEY": "11" * 32}
    if database_url:
        env["SERVICEMONTH_REPORTING_DATABASE_URL"] = database_url
    rt = build("reporting", registry.metadata("reporting"), load(env))
    upgrade("reporting", rt.db)
    return rt


def generate(
    n_members: int, n_records: int, seed: int
) -> tuple[list[tuple[datetime, Event]], dict[str, Any]]:
    """The events of a month, in time order, and what they add up to (for the check)."""
    rng = random.Random(seed)
    codes = [f"{DISTRICT}{1 + c // 10:03d}{1 + c % 10:03d}" for c in range(100)]
    units = [f"U{u:04d}" for u in range(60)]
    month = 30 * 86_400
    events: list[tuple[datetime, Event]] = []

    def at() -> datetime:
        return T0 + timedelta(seconds=rng.randint(1, month - 1))

    members, confirmed, hours = [], set(), 0.0
    for _ in range(n_members):
        mid = uuid.uuid4()
        members.append(mid)
        joined = at()
        refs = [
            CommunityRef(
                registration_id=uuid.uuid4(),
                community_code=rng.choice(codes),
                role=role,
                district=DISTRICT,
            )
            for role in ("unit", "residence")
        ]
        events.append(
            (
                joined,
                MemberRegistered(
                    member_id=mid,
                    unit_code=rng.choice(units),
                    unit_district=DISTRICT,
                    communities=refs,
                    is_leader_cadre=rng.random() < 0.05,
                    name_masked="张*",
                ),
            )
        )
        for ref in refs:
            if rng.random() < 0.8:
                confirmed.add(mid)
                events.append(
                    (
                        joined + timedelta(hours=rng.randint(1, 72)),
                        RegistrationConfirmed(
                            registration_id=ref.registration_id,
                            member_id=mid,
                            community_code=ref.community_code,
                            role=ref.role,
                            state="confirmed",
                        ),
                    )
                )
        for kind in ("need", "project"):
            if rng.random() < 0.7:
                made = PairingMade(
                    pairing_id=uuid.uuid4(),
                    member_id=mid,
                    kind=kind,
                    community_code=rng.choice(codes),
                    subject_id=uuid.uuid4(),
                    title="对接",
                    state="active",
                )
                events.append((joined + timedelta(hours=rng.randint(1, 240)), made))
    for _ in range(n_records):
        record = {
            "record_id": uuid.uuid4(),
            "member_id": rng.choice(members),
            "kind": rng.choice(KINDS),
            "community_code": rng.choice(codes),
            "day": date(2016, 7, 1),
            "hours": rng.choice((1.0, 2.0, 2.5)),
        }
        submitted = at()
        events.append((submitted, ActivitySubmitted(**record, state="submitted")))
        if rng.random() < 0.8:
            verified = submitted + timedelta(hours=rng.randint(1, 48))
            events.append((verified, ActivityVerified(**record, state="verified")))
            hours += record["hours"]
    events.sort(key=lambda e: e[0])
    return events, {
        "members": len(members),
        "reported_in": len(confirmed),
        "hours": hours,
        "ids": members,
        "codes": codes,
    }


def body(event: Event, occurred: datetime) -> dict[str, Any]:
    envelope = envelope_for(
        event, district=DISTRICT, campaign="2016", producer="bench", occurred_at=occurred
    )
    return envelope.model_dump(mode="json")


def write_log(rt: Runtime, events: list[tuple[datetime, Event]]) -> None:
    """The events as the live consumer logs them (``event_log.log_events``)."""
    rows = []
    for occurred, event in events:
        envelope = envelope_for(
            event, district=DISTRICT, campaign="2016", producer="bench", occurred_at=occurred
        )
        rows.append(
            {
                "event_id": str(envelope.id),
                "type": envelope.type,
                "occurred_at": occurred,
                "member_id": getattr(event, "member_id", None),
                "body": json.dumps(envelope.model_dump(mode="json"), ensure_ascii=False),
            }
        )
    with rt.db.session() as session:
        for start in range(0, len(rows), 10_000):
            session.execute(insert(EventLogEntry), rows[start : start + 10_000])
        session.commit()


def live_events(expected: dict[str, Any], seed: int) -> tuple[list[str], float]:
    """Bodies of new service records, submitted then verified, for members of the log (as
    the live consumer receives them), and the hours they add."""
    rng = random.Random(seed + 1)
    bodies, hours = [], 0.0
    at = T0 + timedelta(days=31)
    for n in range(20_000):
        record = {
            "record_id": uuid.uuid4(),
            "member_id": rng.choice(expected["ids"]),
            "kind": rng.choice(KINDS),
            "community_code": rng.choice(expected["codes"]),
            "day": date(2016, 7, 31),
            "hours": rng.choice((1.0, 2.0, 2.5)),
        }
        at += timedelta(seconds=1)
        bodies.append(json.dumps(body(ActivitySubmitted(**record, state="submitted"), at)))
        bodies.append(json.dumps(body(ActivityVerified(**record, state="verified"), at)))
        del n
    return bodies, hours


class Live:
    """A process applying events through the live consumer's path, one at a time, timing
    each (a process, as ``consume`` is: a thread here would only measure the GIL); when it
    stops: how many it applied, and the longest one took."""

    def __init__(self, rt: Runtime, bodies: list[str]) -> None:
        fork = multiprocessing.get_context("fork")
        self.rt = rt
        self.bodies = bodies
        self.stop = fork.Event()
        self.started = fork.Event()
        self.results: Any = fork.Queue()
        self.process = fork.Process(target=self.run, daemon=True)
        self.applied: list[str] = []
        self.longest = 0.0

    def run(self) -> None:
        rt = self.rt  # the engine is made afresh in this process (shared.db)
        consumer = EventConsumer(
            "reporting", rt.settings, registry.handlers("reporting", rt), lambda e: rt.uow(e.id)
        )
        applied, longest, error = 0, 0.0, None
        try:
            for body in self.bodies:
                if self.stop.is_set():
                    break
                started = time.perf_counter()
                while True:  # as the consumer does: a database that is away (SQLite's lock
                    try:  # held past its busy timeout) is waited for, and the wait counts
                        outcome = consumer.apply(body)
                        break
                    except Exception as exc:
                        if not is_outage(exc):
                            raise
                        time.sleep(0.25)
                longest = max(longest, time.perf_counter() - started)
                assert outcome == "applied", outcome
                applied += 1
                self.started.set()
                self.stop.wait(LIVE_PAUSE)
        except Exception as exc:
            error = repr(exc)
        self.started.set()
        self.results.put((applied, longest, error))

    def __enter__(self) -> Live:
        self.process.start()
        self.started.wait(30)  # the live consumer is applying before the rebuild starts
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        applied, self.longest, error = self.results.get(timeout=60)
        self.process.join()
        assert error is None, error
        self.applied = self.bodies[:applied]


def city(rt: Runtime) -> fig.Figures:
    with rt.uow() as uow:
        return fig.figures(uow, "city")


def counted(rt: Runtime, model: Any) -> int:
    with rt.db.reader() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def one(ctx: harness.Context, backend: str, profile: bool = False) -> list[harness.Result]:
    """Both rows on one backend (``postgresql`` or ``sqlite``)."""
    members = ctx.members()
    database = ctx.database("rebuild") if backend == "postgresql" else None
    rt = runtime(ctx.folder(f"rebuild-{backend}"), database)
    try:
        events, expected = generate(members, RECORDS_PER_MEMBER * members, ctx.seed)
        write_log(rt, events)
        handle = bootstrap(runtime=rt).handle
        assert handle(RebuildReadModels()) == len(events)  # the read models, from the log
        before = city(rt)
        assert before.members == expected["members"], (before, expected)
        assert before.reported_in == expected["reported_in"], (before, expected)
        assert abs(before.verified_hours - expected["hours"]) < 0.01, (before, expected)
        records = counted(rt, RecordFact)
        bodies, _ = live_events(expected, ctx.seed)
        profiler: Any = None
        if profile:
            from pyinstrument import Profiler

            profiler = Profiler()
            profiler.start()
        with Live(rt, bodies) as live:
            cpu = time.process_time()
            took, replayed = harness.timed(lambda: handle(RebuildReadModels()))
            cpu = time.process_time() - cpu
            time.sleep(0.2)  # and still applies after the swap
        if profiler is not None:
            profiler.stop()
            print(profiler.output_text(unicode=True, color=False), file=sys.stderr)
        logged = counted(rt, EventLogEntry)
        assert logged == len(events) + len(live.applied), (logged, len(live.applied))
        assert replayed >= len(events), (replayed, len(events))
        # nothing lost, nothing twice: the figures are those before plus the live records
        verified = [json.loads(b) for b in live.applied if '"activity.verified"' in b]
        hours = sum(b["payload"]["hours"] for b in verified)
        after = city(rt)
        assert counted(rt, RecordFact) == records + len(live.applied) - len(verified)
        for name in ("members", "reported_in", "dual_registered", "dual_paired"):
            assert getattr(after, name) == getattr(before, name), (name, before, after)
        assert abs(after.verified_hours - before.verified_hours - hours) < 0.01, (before, after)
        rate = len(events) / took
        name = {"postgresql": "PostgreSQL", "sqlite": "SQLite"}[backend]
        note = (
            f"{len(events):,} events ({members:,} members) replayed in {took:.1f} s "
            f"({cpu:.1f} s CPU in the rebuilding process: {len(events) / cpu:,.0f} events per "
            f"CPU-second) into shadow tables and swapped in, {len(live.applied):,} live "
            "events applied meanwhile; figures after = before + the live records"
        )
        target = backend == "postgresql"
        return [
            harness.absolute(
                f"reporting rebuild ({name})",
                "events/s",
                rate,
                at_least=10_000 if target else None,
                note=note,
            ),
            harness.absolute(
                f"reporting rebuild: live consumer's longest wait ({name})",
                "s",
                live.longest,
                at_most=1.0 if target else None,
                note="one event applied through the live path while the rebuild ran",
            ),
        ]
    finally:
        rt.db.dispose()


def measure(ctx: harness.Context) -> list[harness.Result]:
    """PostgreSQL (the target) and SQLite (reported)."""
    results = []
    if ctx.postgres:
        results += one(ctx, "postgresql")
    results += one(ctx, "sqlite")
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--embedded", action="store_true", help="SQLite only")
    parser.add_argument("--profile", action="store_true", help="pyinstrument the timed rebuild")
    args = parser.parse_args(argv)
    ctx = harness.Context(scale=args.scale, seed=args.seed)
    if args.embedded:
        ctx.postgres = None
    try:
        results = []
        if ctx.postgres:
            results += one(ctx, "postgresql", args.profile)
        results += one(ctx, "sqlite", args.profile)
        for r in results:
            print(f"{r.path:55} {r.ours:12,.3f} {r.unit:9} {r.target:22} {r.verdict}")
            if r.note:
                print(f"    {r.note}")
    finally:
        ctx.close()


if __name__ == "__main__":
    main()
