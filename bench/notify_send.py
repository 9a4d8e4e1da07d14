"""Benchmark: notify's send pipeline, one worker process, against bare provider calls.

One message to each member of the city (``weekly_progress``, the weekly burst) is queued,
then one worker process sends them all as the batch send task does
(:class:`services.notify.commands.SendNotifications`, ``HAND_OVER`` ids a task): open the
sealed contact, check opt-outs, quiet hours, the daily cap and the provider's per-number
limits from our own history, the claim committed before the call, render, the call, ``sent``
with its history, its ``notification.sent`` event and the provider's health. The baseline,
in the same run, renders the same SMS and hands it straight to the same provider, with none
of that. Rows:

- zero-latency provider on PostgreSQL: messages/s against the bare loop (target ≥ 0.1×);
  the same on SQLite, reported;
- a provider answering in 100 ms (it sleeps, as a blocking HTTP client waits): messages/s
  of the one worker process (target ≥ 300/s; at most ``LATENCY_MESSAGES`` messages);
- the worker process's peak RSS over those runs (target ≤ 250 MB).

Each run checks before it reports: every message ``sent`` once, the provider took each
exactly once, three history lines and one event each.

    .venv/bin/python bench/notify_send.py [--scale 0.05] [--embedded]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import harness
from sqlalchemy import func, insert, select

from services.notify.bootstrap import bootstrap
from services.notify.bulk import HAND_OVER, Outgoing, queue_messages
from services.notify.channels import Limit, OutgoingEmail, OutgoingSms
from services.notify.commands import SendNotifications
from services.notify.messages import Recipient
from services.notify.models import Base, Contact, Notification, NotificationEvent
from services.notify.rendering import render_sms
from services.notify.rules import Rules
from services.notify.sending import Sender
from shared.clock import SimulatedClock
from shared.config import CAMPAIGN_TZ, child_environment, load
from shared.db import outbox_table
from shared.events import SealedContact
from shared.migrations import upgrade
from shared.runtime import Runtime, build

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2016, 7, 4, 10, tzinfo=CAMPAIGN_TZ)  # a Monday morning of the campaign
KIND = "weekly_progress"
MISSING = ["home_visit", "policy_talk"]
#: The 100 ms run sends at most this many (a rate; at 300/s it takes a minute).
LATENCY_MESSAGES = 20_000


class FakeProvider:
    """Accepts every SMS after ``latency`` seconds (Aliyun's per-number limit declared, so
    it is checked); remembers what it took, to check nothing went twice."""

    name = "fake"
    limits: tuple[Limit, ...] = (Limit("number+template", timedelta(hours=24), 50),)
    settle_after = timedelta(0)

    def __init__(self, latency: float = 0.0) -> None:
        self.latency = latency
        self.taken: list[str] = []

    def send(self, sms: OutgoingSms) -> str:
        if self.latency:
            time.sleep(self.latency)
        self.taken.append(sms.out_id)  # list.append is atomic under the GIL
        return f"fake:{sms.out_id}"

    def find(self, sms: OutgoingSms, since: datetime) -> str | None:
        return f"fake:{sms.out_id}" if sms.out_id in self.taken else None


class NoEmail:
    name = "none"

    def send(self, mail: OutgoingEmail) -> str:
        raise AssertionError("no e-mail in this benchmark")

    def find(self, mail: OutgoingEmail) -> str | None:
        return None


def _env(home: Path, database: str) -> dict[str, str]:
    return {
        "SERVICEMONTH_HOME": str(home),
        "SERVICEMONTH_PII_KEY": "22" * 32,
        "SERVICEMONTH_NOTIFY_DATABASE_URL": database,
    }


def _runtime(env: dict[str, str]) -> Runtime:
    rt = build("notify", Base.metadata, load(env))
    rt.clock = SimulatedClock(NOW)
    return rt


def prepare(env: dict[str, str], members: list[Any]) -> None:
    """Notify's tables, the members' sealed contacts and one queued message each."""
    rt = _runtime(env)
    upgrade("notify", rt.db)
    ids = [uuid.uuid5(uuid.NAMESPACE_URL, m.ref) for m in members]
    with rt.uow() as uow:
        for start in range(0, len(members), 5000):
            uow.session.execute(
                insert(Contact),
                [
                    {
                        "member_id": member_id,
                        "sealed": SealedContact.seal(rt.sealer, m.name, m.phone, m.email),
                        "phone_masked": f"{m.phone[:3]}****{m.phone[-4:]}",
                        "phone_hmac": rt.sealer.digest(m.phone),
                        "communities": list(m.communities),
                        "sms_enabled": True,
                        "email_enabled": True,
                        "updated_at": NOW,
                    }
                    for member_id, m in zip(
                        ids[start : start + 5000], members[start : start + 5000], strict=True
                    )
                ],
            )
        queued = queue_messages(
            uow,
            [
                Outgoing(Recipient.member(i), KIND, "-", "2016-W27", {"missing": MISSING})
                for i in ids
            ],
        )
        uow.commit()
    assert queued == len(members)
    if not rt.db.is_sqlite:  # the planner's statistics, as autovacuum keeps them on a live table
        with rt.db.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
    rt.db.dispose()


def check(env: dict[str, str], n: int, worker: dict[str, Any]) -> None:
    """Every message sent once, with its history and its event — before any figure."""
    assert worker["taken"] == n and worker["distinct"] == n, worker
    assert worker["outcomes"] == {"sent": n}, worker["outcomes"]
    rt = _runtime(env)
    with rt.db.session() as session:
        statuses = dict(
            session.execute(
                select(Notification.status, func.count()).group_by(Notification.status)
            ).all()
        )
        lines = session.scalar(select(func.count()).select_from(NotificationEvent))
        events = session.scalar(select(func.count()).select_from(outbox_table(rt.db.metadata)))
    rt.db.dispose()
    assert statuses == {"sent": n}, statuses
    assert lines == 3 * n, lines  # queued, sending, sent
    assert events == n, events


def run_worker(env: dict[str, str], latency: float) -> tuple[dict[str, Any], float]:
    """One worker process sending every queued message; what it reports, and its peak RSS
    (MB) sampled from outside."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--worker", str(latency)],
        env=child_environment({**env, "PYTHONPATH": str(ROOT)}),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    with harness.peak_rss(lambda: [proc.pid]) as rss:
        out, _ = proc.communicate(timeout=3600)
    assert proc.returncode == 0, f"the worker failed ({proc.returncode})"
    return json.loads(out.strip().splitlines()[-1]), rss["mb"]


def worker(latency: float) -> None:
    """The worker process: the batch send task's command over every queued message,
    ``HAND_OVER`` ids at a time (Celery's part left out); prints what it did as JSON."""
    rt = _runtime(child_environment({}))  # the settings its parent gave it
    provider = FakeProvider(latency)
    sender = Sender(
        sealer=rt.sealer, providers=[provider], email=NoEmail(), rules=Rules(), district="410303"
    )
    bus = bootstrap(runtime=rt, sender=sender, dispatch=lambda _: None)
    with rt.db.session() as session:
        ids = list(
            session.scalars(
                select(Notification.id)
                .where(Notification.status == "queued")
                .order_by(Notification.created_at, Notification.id)
            )
        )
    outcomes: Counter[str] = Counter()
    started, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(ids), HAND_OVER):
        done = bus.handle(SendNotifications(notification_ids=tuple(ids[start : start + HAND_OVER])))
        outcomes.update(o.status for o in done.values())
    seconds = time.perf_counter() - started
    report = {
        "seconds": seconds,
        "cpu": time.process_time() - cpu,
        "outcomes": dict(outcomes),
        "taken": len(provider.taken),
        "distinct": len(set(provider.taken)),
    }
    print(json.dumps(report))


def bare_loop(members: list[Any]) -> float:
    """The baseline: render each SMS and hand it to the provider; messages/s."""
    provider = FakeProvider()
    started = time.perf_counter()
    for i, m in enumerate(members):
        rendered = render_sms(KIND, {"name": m.name, "missing": MISSING})
        provider.send(
            OutgoingSms(
                out_id=str(i),
                phone=m.phone,
                phone_masked=f"{m.phone[:3]}****{m.phone[-4:]}",
                kind=KIND,
                template_code="",
                params=rendered.params,
                text=rendered.text,
                segments=rendered.segments,
            )
        )
    seconds = time.perf_counter() - started
    assert len(provider.taken) == len(members)
    return len(members) / seconds


def _sqlite(ctx: harness.Context, name: str) -> tuple[Path, str]:
    home = ctx.folder(name)
    return home, f"sqlite:///{home / 'notify.db'}"


def measure(ctx: harness.Context) -> list[harness.Result]:
    members = ctx.city.members
    n = len(members)
    assert n == ctx.members()
    results: list[harness.Result] = []
    peak = 0.0

    runs: list[tuple[str, Path, str]] = []
    if ctx.postgres:
        runs.append(("postgresql", ctx.folder("notify-pg"), ctx.database("notify_send")))
    runs.append(("sqlite", *_sqlite(ctx, "notify-sqlite")))
    for backend, home, database in runs:
        env = _env(home, database)
        prepare(env, members)
        baseline = bare_loop(members)  # next to the run it is compared with (a busy machine)
        report, rss = run_worker(env, 0.0)
        check(env, n, report)
        peak = max(peak, rss)
        rate = n / report["seconds"]
        note = (
            f"{n:,} messages, zero-latency provider, one worker process"
            f" (its CPU: {report['cpu']:.1f} s, {n / report['cpu']:,.0f} msg/s)"
        )
        if backend == "postgresql":
            results.append(
                harness.throughput(
                    "notify send (PostgreSQL)", "msg/s", rate, baseline, 0.1, note=note
                )
            )
        else:
            results.append(
                harness.Result(
                    "notify send (SQLite)",
                    "msg/s",
                    rate,
                    baseline,
                    rate / baseline,
                    "reported",
                    None,
                    note,
                )
            )

    slow = members[: min(n, LATENCY_MESSAGES)]
    backend, home, database = runs[0]
    if backend == "postgresql":
        database = ctx.database("notify_send_slow")
    else:
        home, database = _sqlite(ctx, "notify-slow")
    env = _env(home, database)
    prepare(env, slow)
    report, rss = run_worker(env, 0.1)
    check(env, len(slow), report)
    peak = max(peak, rss)
    note = (
        f"{len(slow):,} messages on {backend}, provider answering in 100 ms"
        f" (worker CPU: {report['cpu']:.1f} s)"
    )
    results.append(
        harness.absolute(
            "notify send, 100 ms provider", "msg/s", len(slow) / report["seconds"], 300, note=note
        )
    )
    results.append(
        harness.absolute(
            "notify worker peak RSS", "MB", peak, at_most=250, note="the worker process, every run"
        )
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--embedded", action="store_true", help="SQLite only, no PostgreSQL")
    parser.add_argument("--worker", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        worker(args.worker)
        return
    ctx = harness.Context(
        args.scale, args.seed, postgres=None if args.embedded else harness.PG_ADMIN
    )
    harness.show(ctx, measure)


if __name__ == "__main__":
    main()
