"""What reporting's integration tests share: a month of the campaign driven through the real
APIs on one simulated clock (members register and report in, needs and projects are
published and paired, wishes go through their lifecycle, records are verified or returned),
the ``clock`` and ``admin`` fixtures it runs on, and delivery of the events to pairing and
reporting."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from services.pairing import tasks as pairing_tasks
from services.reporting import figures as fig
from services.reporting.models import EventLogEntry
from services.reporting.replay import FOLDS
from shared.clock import SimulatedClock
from shared.config import CAMPAIGN_TZ
from shared.db import outbox_table
from shared.vocabulary import SKILLS
from tests import support

START = datetime(2016, 6, 26, 9, 0, tzinfo=CAMPAIGN_TZ)
UNITS = ["U410300001", "U410300002", "U410303001", "U410305001"]
COMMUNITIES = ["410303001001", "410303002001", "410305001001", "410305001002"]
KINDS = fig.KINDS
SCOPES = ["city", "district:410303", "district:410305", "unit:U410300001", "community:410303001001"]


@pytest.fixture
def clock(backend: Any) -> SimulatedClock:
    """Every service on one simulated clock, from the campaign's first morning."""
    return support.on_simulated_clock(backend, START)


@pytest.fixture
def admin(backend: Any, clock: SimulatedClock) -> Iterator[Any]:
    support.load_sample_directory(backend)
    with support.client(support.issue_token(backend, "admin", "city")) as http:
        yield http


@dataclass
class Month:
    """What the driver did, for the checks: members, where they are confirmed, tokens."""

    backend: Any
    http: Any
    clock: SimulatedClock
    rng: random.Random
    members: dict[str, dict[str, Any]] = field(default_factory=dict)
    confirmed: dict[str, list[str]] = field(default_factory=dict)  # community → members
    tokens: dict[str, str] = field(default_factory=dict)
    #: registrations left ``submitted`` until :func:`release` (their member is confirmed
    #: in another community meanwhile)
    held: list[dict[str, Any]] = field(default_factory=list)

    def day(self, n: int = 1) -> None:
        self.clock.advance(timedelta(days=n))

    def me(self, member_id: str) -> Any:
        if member_id not in self.tokens:
            self.tokens[member_id] = support.issue_token(
                self.backend, "member", f"member:{member_id}"
            )
        return support.client(self.tokens[member_id])

    def ok(self, response: Any, status: int = 200) -> Any:
        assert response.status_code == status, response.text
        return response.json()


def register(month: Month, count: int, seed: int) -> None:
    """Members register on the APIs: a mix of units (two city-level) and residences; a few
    leading cadres; one city-unit member living in another district."""
    rng = month.rng
    for n in range(count):
        body = support.member_body(
            seed + n, unit_code=UNITS[n % 4], residence_community_code=rng.choice(COMMUNITIES)
        )
        body["is_leader_cadre"] = n % 6 == 0
        if n == 1:  # 市直 unit (community in 410303), living in 410305
            body |= {"unit_code": "U410300002", "residence_community_code": "410305001001"}
        created = month.ok(month.http.post("/api/v1/members", json=body), 201)
        month.members[created["id"]] = created
        if n == 1:  # confirmed at the unit's community, still submitted at home for a while
            for reg in created["registrations"]:
                reg["first"] = reg["role"] == "unit"
                if reg["role"] == "residence":
                    reg["done"] = True
                    month.held.append(reg)


def confirm(month: Month, share: float) -> None:
    """Staff confirm most pending registrations, reject a few."""
    for member_id, created in month.members.items():
        for reg in created["registrations"]:
            if reg.get("done"):
                continue
            roll = month.rng.random()
            if roll < share or reg.get("first"):
                month.ok(month.http.post(f"/api/v1/registrations/{reg['id']}/confirm"))
                month.confirmed.setdefault(reg["community_code"], []).append(member_id)
                reg["done"] = True
            elif roll > 0.95:
                month.ok(
                    month.http.post(
                        f"/api/v1/registrations/{reg['id']}/reject", json={"reason": "不在本社区"}
                    )
                )
                reg["done"] = True


def release(month: Month) -> None:
    """The held registrations are confirmed now."""
    for reg in month.held:
        month.ok(month.http.post(f"/api/v1/registrations/{reg['id']}/confirm"))
        member_id = next(m for m, c in month.members.items() if reg in c["registrations"])
        month.confirmed.setdefault(reg["community_code"], []).append(member_id)
    month.held.clear()


def deliver_to_pairing(month: Month) -> None:
    backend = month.backend
    support.relay_all(backend)
    # per (member, community): a member confirmed elsewhere before is not enough
    want = {(m, code) for code, ms in month.confirmed.items() for m in ms}

    def learned() -> bool:
        from services.pairing.models import MemberReplica

        with backend.rt("pairing").db.session() as s:
            rows = s.scalars(select(MemberReplica)).all()
        done = {
            (str(r.id), c["code"])
            for r in rows
            for c in r.communities
            if c.get("state") == "confirmed"
        }
        return want <= done

    assert support.run_consumers(
        [support.consumer(backend, "pairing")], until=learned, timeout=60, settle=0.3
    )


def publish(month: Month) -> None:
    """Each community publishes needs and projects (pairing runs after each) and a team."""
    for code in COMMUNITIES:
        for skill in month.rng.sample(SKILLS, 3):
            body = {"title": f"{skill}服务", "required_skill": skill, "volunteers_needed": 4}
            month.ok(month.http.post(f"/api/v1/communities/{code}/needs", json=body), 201)
        project = {"kind": "治安巡逻", "title": "夜间巡逻", "capacity": 6}
        month.ok(month.http.post(f"/api/v1/communities/{code}/projects", json=project), 201)
        month.ok(
            month.http.post(f"/api/v1/communities/{code}/teams", json={"name": "志愿服务队"}), 201
        )
    run = month.ok(month.http.post("/api/v1/pairings/run", json={"scope": "city"}), 202)
    assert pairing_tasks.run_pairing(run["id"]) == "done"  # what pairing's worker does


def serve(month: Month, wishes: int) -> None:
    """A stretch of the month: wishes through their lifecycle, records verified or returned,
    members joining teams."""
    http, rng = month.http, month.rng
    for code, members in sorted(month.confirmed.items()):
        for _ in range(wishes):
            wish = month.ok(
                http.post("/api/v1/wishes", json={"community_code": code, "title": "买米"}), 201
            )
            for step in ("submit", "publish"):
                month.ok(http.post(f"/api/v1/wishes/{wish['id']}/{step}"))
            fate = rng.random()
            if fate < 0.15:
                continue  # stays published
            who = rng.choice(members)
            with month.me(who) as me:
                month.ok(me.post(f"/api/v1/wishes/{wish['id']}/claim", json={"member_id": who}))
                if fate < 0.3:
                    month.ok(me.post(f"/api/v1/wishes/{wish['id']}/cancel"))
                    continue
                if fate < 0.45:
                    continue  # stays claimed
                month.ok(me.post(f"/api/v1/wishes/{wish['id']}/fulfil"))
            if fate < 0.55:
                continue
            month.ok(http.post(f"/api/v1/wishes/{wish['id']}/confirm"))
        teams = month.ok(http.get(f"/api/v1/communities/{code}/teams"))
        for who in rng.sample(members, max(1, len(members) // 2)):
            today = month.clock.now().astimezone(CAMPAIGN_TZ).date().isoformat()
            kind = rng.choice(KINDS[:3])
            body = {"member_id": who, "kind": kind, "community_code": code, "date": today}
            record = month.ok(
                http.post("/api/v1/activities", json={**body, "hours": rng.choice((1, 2, 3.5))}),
                201,
            )
            act = "return" if rng.random() < 0.2 else "verify"
            extra = {"json": {"reason": "记录不完整"}} if act == "return" else {}
            month.ok(http.post(f"/api/v1/activities/{record['id']}/{act}", **extra))
            if teams and rng.random() < 0.3:
                http.post(f"/api/v1/teams/{teams[0]['id']}/members", json={"member_id": who})
        month.day()


def deliver_to_reporting(backend: Any) -> None:
    """Relay every outbox and run reporting's consumer until it logged every event it
    projects (the others — team requests, notifications — it ignores)."""
    for service in ("registration", "pairing"):
        support.relay_all(backend, service)
    wanted = {cls.TYPE for cls in FOLDS}
    total = 0
    for service in ("registration", "pairing"):
        db = backend.rt(service).db
        with db.session() as s:
            keys = s.scalars(select(outbox_table(db.metadata).c.routing_key)).all()
        total += sum(key.split(".", 1)[1] in wanted for key in keys)

    def logged() -> bool:
        with backend.rt("reporting").db.session() as s:
            return (s.scalar(select(func.count()).select_from(EventLogEntry)) or 0) >= total

    assert support.run_consumers([support.consumer(backend, "reporting")], until=logged, timeout=90)


def first_half(backend: Any, http: Any, clock: SimulatedClock, seed: int = 7) -> Month:
    """Members register, most are confirmed (one of them in one community only), needs
    and projects are published and paired, a first day of service."""
    month = Month(backend, http, clock, random.Random(seed))
    register(month, 18, 3000)
    month.day()
    confirm(month, 0.8)
    deliver_to_pairing(month)
    month.day()
    publish(month)
    month.day()
    serve(month, 2)
    return month


def drive_month(backend: Any, http: Any, clock: SimulatedClock, seed: int = 7) -> Month:
    """The first half of a campaign through the APIs, and another day of service."""
    month = first_half(backend, http, clock, seed)
    serve(month, 1)
    return month
