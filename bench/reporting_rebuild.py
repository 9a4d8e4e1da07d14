"""Benchmark: ``servicemonth report rebuild`` at scale — replaying a large event log.

A synthetic month (≈ 12,000 members registering with two communities, their registrations
confirmed, pairings made, ≈ 96,000 service records submitted then verified, in time order:
≈ 220,000 events) is written straight into reporting's event log, as the live consumer
logs it. Then :func:`services.reporting.rebuild.rebuild` empties the projections and
replays the log through the same handlers, timed, in one transaction (the time printed is
also how long the swap holds the log locked). The figures after the rebuild are checked
against the facts the events carried, counted in Python.

    .venv/bin/python bench/reporting_rebuild.py [--members 12000] [--records 96000]
        [--seed 2016] [--database-url postgresql://postgres@127.0.0.1/x]

``--database-url`` runs on PostgreSQL: a throw-away database ``x_reporting`` is created and
dropped at the end (default: SQLite in a temp dir).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import random
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, insert, make_url, text

from services import registry
from services.reporting import figures as fig
from services.reporting.bootstrap import bootstrap
from services.reporting.commands import RebuildReadModels
from services.reporting.models import EventLogEntry
from shared.config import load
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


def runtime(home: Path, database_url: str | None) -> Runtime:
    env = {"SERVICEMONTH_HOME": str(home), "SERVICEMONTH_PII_KEY": "11" * 32}
    if database_url:
        env["SERVICEMONTH_DATABASE_URL"] = database_url
    rt = build("reporting", registry.metadata("reporting"), load(env))
    upgrade("reporting", rt.db)
    return rt


def drop_database(database_url: str) -> None:
    url = make_url(database_url)
    engine = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}_reporting" WITH (FORCE)'))
    engine.dispose()


def generate(args: argparse.Namespace) -> tuple[list[tuple[datetime, Event]], dict[str, Any]]:
    """The events of a month, in time order, and what they add up to (for the check)."""
    rng = random.Random(args.seed)
    codes = [f"{DISTRICT}{1 + c // 10:03d}{1 + c % 10:03d}" for c in range(100)]
    units = [f"U{u:04d}" for u in range(60)]
    month = 30 * 86_400
    events: list[tuple[datetime, Event]] = []

    def at() -> datetime:
        return T0 + timedelta(seconds=rng.randint(1, month - 1))

    members, confirmed, hours = [], set(), 0.0
    for _ in range(args.members):
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
    for _ in range(args.records):
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
    return events, {"members": len(members), "reported_in": len(confirmed), "hours": hours}


def write_log(rt: Runtime, events: list[tuple[datetime, Event]]) -> None:
    """The events as the live consumer logs them (``event_log.log_event``)."""
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=12_000)
    parser.add_argument("--records", type=int, default=96_000)
    parser.add_argument("--seed", type=int, default=2016)
    parser.add_argument("--database-url", help="a throw-away PostgreSQL database name")
    parser.add_argument("--profile", action="store_true", help="print where the replay spends")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as home:
        rt = runtime(Path(home), args.database_url)
        try:
            events, expected = generate(args)
            started = time.perf_counter()
            write_log(rt, events)
            print(
                f"event log: {len(events)} events on {rt.db.engine.dialect.name} "
                f"(written in {time.perf_counter() - started:.1f} s)"
            )
            profile = cProfile.Profile() if args.profile else None
            started = time.perf_counter()
            if profile is not None:
                profile.enable()
            replayed = bootstrap(runtime=rt).handle(RebuildReadModels())
            if profile is not None:
                profile.disable()
            took = time.perf_counter() - started
            assert replayed == len(events), (replayed, len(events))
            with rt.uow() as uow:
                city = fig.figures(uow, "city")
            assert city.members == expected["members"], (city, expected)
            assert city.reported_in == expected["reported_in"], (city, expected)
            assert abs(city.verified_hours - expected["hours"]) < 0.01, (city, expected)
            print(
                f"rebuild    : {took:8.1f} s  {replayed / took:8.0f} events/s  "
                f"(one transaction: the log is locked this long)"
            )
            if profile is not None:
                pstats.Stats(profile).sort_stats("cumulative").print_stats(25)
        finally:
            rt.db.dispose()
            if args.database_url:
                drop_database(args.database_url)


if __name__ == "__main__":
    main()
