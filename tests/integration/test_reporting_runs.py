"""Scheduled summaries on both backends: subscriptions, exactly one report per slot with two
schedulers, a dead worker's run reclaimed, retries then a failure notice, missed slots
coalesced. Reporting is fed as in ``test_reporting_reports``.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from services.reporting import runs
from services.reporting.models import ReportRun
from services.reporting.subscriptions import campaign_window, slots
from shared.clock import SimulatedClock
from shared.config import CAMPAIGN_TZ
from shared.runtime import Runtime
from tests.integration.test_reporting_reports import (  # noqa: F401 (clock, rt, feed: fixtures)
    OPEN,
    Feed,
    clock,
    feed,
    generated,
    rt,
)
from tests.support import client, issue_token


def subscribe(backend: Any, token: str, **body: Any) -> Any:
    payload = {"scope": "city", "name": "张三", "email": "zhang.san@example.com"} | body
    with client(token) as http:
        return http.post("/api/v1/subscriptions", json=payload)


def all_runs(rt: Runtime) -> list[ReportRun]:
    with rt.db.session() as session:
        return list(session.scalars(select(ReportRun)))


class Worker:
    """Collects enqueued builds (what Celery would carry) and runs them when told."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.queue: list[tuple[uuid.UUID, int]] = []
        self.lock = threading.Lock()

    def enqueue(self, run_id: uuid.UUID, attempt: int) -> None:
        with self.lock:
            self.queue.append((run_id, attempt))

    def drain(self, source: Any = None, lose: bool = False) -> list[str]:
        with self.lock:
            jobs, self.queue = self.queue, []
        if lose:  # the worker died with these
            return []
        done = [runs.build(self.rt, r, a, source) for r, a in jobs]
        # Celery redelivers after a lost ack: the second delivery changes nothing
        assert {runs.build(self.rt, r, a, source) for r, a in jobs} <= {"not-ours"}
        return done


def race(rt: Runtime, worker: Worker) -> list[dict[str, int]]:
    """Two schedulers' ticks at the same instant."""
    barrier = threading.Barrier(2)
    results: list[dict[str, int]] = []

    def one(holder: str) -> None:
        barrier.wait()
        results.append(runs.tick(rt, holder, worker.enqueue))

    threads = [threading.Thread(target=one, args=(h,)) for h in ("sched-a", "sched-b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


# --- subscriptions over HTTP ------------------------------------------------------------------


def test_a_leader_subscribes_in_scope_with_contact_masked_and_bad_fields_named(
    backend: Any, rt: Runtime
) -> None:
    leader = issue_token(backend, "leader", "district:410303")
    made = subscribe(
        backend, leader, scope="district:410303", phone="138 1234 8000", channels=["sms", "email"]
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["state"] == "active" and body["schedule"] == "campaign"
    assert body["phone"] == "138****8000" and body["email"] == "z***@example.com"
    assert body["name"] == "张*"
    assert subscribe(backend, leader, scope="district:410305").status_code == 404
    assert subscribe(backend, leader, scope="city").status_code == 404
    for wrong in ("unit:bad code", f"member:{uuid.uuid4()}", "district:4103"):
        refused = subscribe(backend, leader, scope=wrong)
        assert refused.status_code == 422, wrong
        assert {e["field"] for e in refused.json()["errors"]} == {"scope"}
    bad = subscribe(
        backend, leader, scope="district:410303", schedule="every monday", channels=["sms", "fax"]
    )
    assert bad.status_code == 422
    fields = {e["field"] for e in bad.json()["errors"]}
    assert "channels.1" in fields
    bad = subscribe(
        backend, leader, scope="district:410303", schedule="0 25 * * *", channels=["sms"]
    )
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"schedule", "phone"}
    member = issue_token(backend, "member", f"member:{uuid.uuid4()}")
    assert subscribe(backend, member).status_code == 403
    with client(leader) as http:
        listed = http.get("/api/v1/subscriptions").json()
    assert [s["id"] for s in listed] == [body["id"]]
    with rt.db.session() as session:
        stored = session.execute(select(ReportRun)).all()
    assert stored == []
    raw = json.dumps(listed)
    assert "13812348000" not in raw and "zhang.san" not in raw


# --- exactly once -----------------------------------------------------------------------------


def test_two_schedulers_over_a_month_report_each_slot_exactly_once_and_a_dead_worker_is_covered(
    backend: Any, rt: Runtime, clock: SimulatedClock, feed: Feed
) -> None:
    admin = issue_token(backend, "admin", "city")
    city = subscribe(backend, admin, formats=["xlsx"]).json()
    district = subscribe(
        backend,
        admin,
        scope="district:410303",
        schedule="0 20 * * 5",
        phone="13812348000",
        channels=["sms"],
        formats=["html"],
    ).json()
    worker = Worker(rt)
    _, close = campaign_window(rt.settings)
    end = close + timedelta(days=1, hours=2)
    stale = timedelta(seconds=600)
    tick = timedelta(seconds=60)
    killed: dict[str, Any] = {}
    n = step = 0
    while clock.now() < end:
        step += 1
        if n < 30 and step % 2:  # members join along the way
            feed.member(n, clock.now())
            n += 1
        results = race(rt, worker)
        assert sum(r.get("claimed", 0) for r in results) <= 2  # one per subscription at most
        local = clock.now().astimezone(CAMPAIGN_TZ)
        if not killed and worker.queue and local.month == 7 and local.day >= 4:
            killed = {"at": clock.now(), "jobs": list(worker.queue)}
            worker.drain(lose=True)  # the worker dies mid-report
            while clock.now() < killed["at"] + stale + 2 * tick:
                clock.advance(tick)
                race(rt, worker)
                if worker.drain():
                    killed["delivered"] = clock.now()
                    break
            continue
        worker.drain()
        assert race(rt, worker) == [{}, {}] and not worker.queue  # a redelivered tick: nothing
        clock.advance(timedelta(hours=3))

    assert killed.get("delivered"), "the dead worker's report was never delivered"
    assert killed["delivered"] - killed["at"] <= stale + tick
    for sub in (city, district):
        expected = {(s.start, s.end) for s in slots(sub["schedule"], rt.settings)}
        mine = [r for r in all_runs(rt) if str(r.subscription_id) == sub["id"]]
        assert {(r.period_start, r.period_end) for r in mine} == expected
        assert Counter(r.status for r in mine) == {"done": len(expected)}
        sent = Counter(
            (e["period_start"], e["period_end"])
            for e in generated(rt)
            if e["subscription_id"] == sub["id"]
        )
        assert len(sent) == len(expected) and set(sent.values()) == {1}
    one = next(e for e in generated(rt) if e["subscription_id"] == district["id"])
    assert one["channels"] == ["sms"] and one["recipient"]["phone_masked"] == "138****8000"
    assert "13812348000" not in one["recipient"]["sealed"]
    assert [f["media_type"] for f in one["files"]] == ["text/html", "image/png", "image/png"]
    assert all((rt.settings.reports_dir / f["path"]).is_file() for f in one["files"])


def test_missed_slots_are_coalesced_within_the_grace_period_and_older_ones_skipped(
    backend: Any, rt: Runtime, clock: SimulatedClock, feed: Feed
) -> None:
    admin = issue_token(backend, "admin", "city")
    every6h = subscribe(backend, admin, schedule="0 */6 * * *", formats=["xlsx"]).json()
    worker = Worker(rt)
    clock.set(datetime(2016, 7, 2, 13, tzinfo=CAMPAIGN_TZ))  # down since the start
    assert race(rt, worker)  # one of them claims the latest, records the rest skipped
    worker.drain()
    mine = sorted(all_runs(rt), key=lambda r: r.slot)
    assert [r.status for r in mine].count("done") == 1
    assert mine[-1].status == "done" and mine[-1].slot == datetime(
        2016, 7, 2, 12, tzinfo=CAMPAIGN_TZ
    )
    assert {r.status for r in mine[:-1]} == {"skipped"}
    created = OPEN + timedelta(hours=6)
    expected = [s for s in slots(every6h["schedule"], rt.settings) if created < s.at <= clock.now()]
    assert len(mine) == len(expected)
    assert len(generated(rt)) == 1


def test_a_failing_build_is_retried_with_backoff_then_the_subscriber_is_told(
    backend: Any, rt: Runtime, clock: SimulatedClock, feed: Feed, caplog: Any
) -> None:
    class Broken:
        def __getattr__(self, name: str) -> Any:
            raise RuntimeError("the read model is away\nSELECT … WHERE phone = '13812348000'")

    admin = issue_token(backend, "admin", "city")
    subscribe(backend, admin, schedule="final", formats=["xlsx"])
    worker = Worker(rt)
    clock.set(datetime(2016, 8, 1, 8, 31, tzinfo=CAMPAIGN_TZ))
    runs.tick(rt, "a", worker.enqueue)
    assert worker.drain(Broken()) == ["retry"]
    runs.tick(rt, "a", worker.enqueue)
    assert worker.queue == []  # not before its backoff
    for wait in (60, 120):
        clock.advance(timedelta(seconds=wait + 1))
        runs.tick(rt, "a", worker.enqueue)
        assert worker.drain(Broken()) == ["retry" if wait == 60 else "failed"]
    (run,) = all_runs(rt)
    assert run.status == "failed" and run.attempts == 3 and "RuntimeError" in (run.error or "")
    assert "13812348000" not in (run.error or "")
    logged = [r for r in caplog.records if r.name == "services.reporting.builds"]
    assert len(logged) == 3  # one line per attempt: the type and the first line, no traceback
    assert all(r.exc_info is None and r.exc_text is None for r in logged)
    assert "RuntimeError: the read model is away" in logged[0].getMessage()
    assert "13812348000" not in caplog.text and "Traceback" not in caplog.text
    (told,) = generated(rt)
    assert told["failed"] is True and told["files"] == [] and "失败" in told["headline"]
    clock.advance(timedelta(hours=1))
    assert runs.tick(rt, "a", worker.enqueue) == {} and worker.queue == []
