"""Reporting's projections on both backends: a month driven through the real APIs (the
driver the other reporting tests share), figures of a closed period that do not move,
scopes by the caller's token. The independent oracle — every figure equal to what
registration's and pairing's own tables say, live and as of an instant — is in
``test_reporting_oracle``."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from services.reporting import figures as fig
from services.reporting.consumers import PROJECTIONS
from services.reporting.models import EventLogEntry
from shared.clock import SimulatedClock
from shared.config import CAMPAIGN_TZ
from shared.db import outbox_table
from shared.vocabulary import SKILLS
from tests.support import (
    client,
    consumer,
    issue_token,
    load_sample_directory,
    member_body,
    on_simulated_clock,
    relay_all,
    run_consumers,
)

START = datetime(2016, 6, 26, 9, 0, tzinfo=CAMPAIGN_TZ)
UNITS = ["U410300001", "U410300002", "U410303001", "U410305001"]
COMMUNITIES = ["410303001001", "410303002001", "410305001001", "410305001002"]
KINDS = fig.KINDS
SCOPES = ["city", "district:410303", "district:410305", "unit:U410300001", "community:410303001001"]


@pytest.fixture
def clock(backend: Any) -> SimulatedClock:
    """Every service on one simulated clock, from the campaign's first morning."""
    return on_simulated_clock(backend, START)


@pytest.fixture
def admin(backend: Any, clock: SimulatedClock) -> Iterator[Any]:
    load_sample_directory(backend)
    with client(issue_token(backend, "admin", "city")) as http:
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
            self.tokens[member_id] = issue_token(self.backend, "member", f"member:{member_id}")
        return client(self.tokens[member_id])

    def ok(self, response: Any, status: int = 200) -> Any:
        assert response.status_code == status, response.text
        return response.json()


def register(month: Month, count: int, seed: int) -> None:
    """Members register on the APIs: a mix of units (two city-level) and residences; a few
    leading cadres; one city-unit member living in another district."""
    rng = month.rng
    for n in range(count):
        body = member_body(
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
    relay_all(backend)
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

    assert run_consumers([consumer(backend, "pairing")], until=learned, timeout=60, settle=0.3)


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
    month.ok(month.http.post("/api/v1/pairings/run", json={"scope": "city"}))


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
        relay_all(backend, service)
    wanted = {cls.TYPE for cls in PROJECTIONS}
    total = 0
    for service in ("registration", "pairing"):
        db = backend.rt(service).db
        with db.session() as s:
            keys = s.scalars(select(outbox_table(db.metadata).c.routing_key)).all()
        total += sum(key.split(".", 1)[1] in wanted for key in keys)

    def logged() -> bool:
        with backend.rt("reporting").db.session() as s:
            return (s.scalar(select(func.count()).select_from(EventLogEntry)) or 0) >= total

    assert run_consumers([consumer(backend, "reporting")], until=logged, timeout=90)


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


def test_a_closed_period_gives_the_same_figures_and_ranks_after_more_events(
    backend: Any, admin: Any, clock: SimulatedClock
) -> None:
    month = drive_month(backend, admin, clock)
    deliver_to_reporting(backend)
    end = clock.now()
    rt = backend.rt("reporting")
    with rt.uow() as uow:
        levels = fig.children(uow, "city")
        before = fig.figures_many(uow, SCOPES, end)
        ranks = fig.ranking(uow, levels, end)
    assert levels[:2] == ["district:410303", "district:410305"]
    assert "unit:U410300001" in levels and "unit:U410303001" not in levels
    clock.advance(timedelta(hours=1))
    confirm(month, 1.0)  # the rest report in, and the month goes on
    deliver_to_pairing(month)
    serve(month, 1)
    deliver_to_reporting(backend)
    with rt.uow() as uow:
        assert fig.figures_many(uow, SCOPES, end) == before
        again = fig.ranking(uow, levels, end)
        now = fig.figures(uow, "city")
    assert [(n, f.scope) for n, f in again] == [(n, f.scope) for n, f in ranks]
    assert again == ranks
    assert now != before["city"]
    codes = [f.code for _, f in ranks]
    values = [f.dual_pairing_rate for _, f in ranks]
    for i in range(len(ranks) - 1):  # best first; equal rates ordered by code
        assert values[i] > values[i + 1] or (values[i] == values[i + 1] and codes[i] < codes[i + 1])


def test_the_summary_is_scoped_by_the_callers_token(backend: Any, admin: Any) -> None:
    with client(issue_token(backend, "leader", "district:410303")) as leader:
        assert leader.get("/api/v1/summary", params={"scope": "city"}).status_code == 404
        assert leader.get("/api/v1/summary", params={"scope": "district:410305"}).status_code == 404
        own = leader.get("/api/v1/summary")
        assert own.status_code == 200 and own.json()["scope"] == "district:410303"
        assert (
            leader.get("/api/v1/summary", params={"scope": "community:410303001001"}).status_code
            == 200
        )
        assert leader.get("/api/v1/summary", params={"scope": "unit:bad code"}).status_code == 422
    with client(issue_token(backend, "community", "community:410303001001")) as staff:
        assert staff.get("/api/v1/summary").json()["scope"] == "community:410303001001"
        assert (
            staff.get("/api/v1/summary", params={"scope": "community:410303002001"}).status_code
            == 404
        )
    with client(issue_token(backend, "member", f"member:{uuid.uuid4()}")) as member:
        assert member.get("/api/v1/summary").status_code == 403
    with client() as nobody:
        assert nobody.get("/api/v1/summary").status_code == 401
