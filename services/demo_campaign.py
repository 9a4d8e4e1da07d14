"""The demo's month: communities publish needs, the engine pairs, members claim wishes and
record the five ones while the simulated clock walks through the campaign.

Everything goes through the HTTP contract with the tokens a real deployment would use.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from pathlib import Path
from time import monotonic, sleep
from typing import Any

import click
import httpx

from services.demo_data import COMMUNITIES
from shared.clock import SimulatedClock
from shared.config import CAMPAIGN_TZ
from shared.vocabulary import SKILLS

PROJECTS = [
    ("文明创建", "文明楼院创建"),
    ("治安巡逻", "平安小区夜间巡逻"),
    ("环境卫生", "清洁家园"),
]
NEEDS = {  # title → the residents it serves (服务对象类别)
    "空巢老人陪伴": "空巢老人",
    "留守儿童课业辅导": "留守儿童",
    "困难家庭家电维修": "困难党员和群众",
    "随迁子女暑期托管": "外来务工人员及随迁子女",
}
WISHES = ["一台收音机", "一套课外书", "修好漏水的水龙头", "陪老人去一次医院", "一副老花镜"]
KINDS = ("home_visit", "community_activity", "policy_talk")
#: When the demo runs the scheduler's sweeps each day (the evening one meets quiet hours).
SWEEP_HOURS = (8, 9, 10, 17, 21)


class Month:
    """Drives the campaign month for the demo's members."""

    def __init__(
        self,
        http: httpx.Client,
        as_member: Callable[[str], httpx.Client],
        clock_file: Path,
        start: date,
        end: date,
    ) -> None:
        self.http = http
        self.as_member = as_member
        self.clock = SimulatedClock(_at(start, 8), clock_file)
        self.start, self.end = start, end
        self.rng = random.Random(37)

    def _post(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return self.http.post(path, json=body or {})

    def publish(self) -> None:
        """每个社区 publishes its needs list, projects and a team (需求清单)."""
        for code in COMMUNITIES:
            for n, title in enumerate(self.rng.sample(sorted(NEEDS), 3)):
                skill = self.rng.choice(SKILLS) if n == 0 else None  # one needs a specialist
                need = {"title": title, "category": NEEDS[title], "volunteers_needed": 12}
                created = self._post(
                    f"/api/v1/communities/{code}/needs", {**need, "required_skill": skill}
                )
                if created.status_code != 201:
                    raise click.ClickException(f"publishing a need failed: {created.text}")
            for kind, title in PROJECTS:
                self._post(
                    f"/api/v1/communities/{code}/projects",
                    {"kind": kind, "title": title, "capacity": 40},
                )
            self._post(
                f"/api/v1/communities/{code}/teams", {"name": "党员志愿服务队", "speciality": None}
            )
            for title in WISHES:
                wish = self._post(
                    "/api/v1/wishes",
                    {"community_code": code, "title": title, "deadline": str(self.end)},
                ).json()
                self._post(f"/api/v1/wishes/{wish['id']}/submit")
                self._post(f"/api/v1/wishes/{wish['id']}/publish")
        click.echo(f"\n{len(COMMUNITIES)} communities published needs, projects, teams and wishes")

    def pair(self) -> None:
        """The city's pairing run: queued at once, done by pairing's worker; followed here."""
        run = self._post("/api/v1/pairings/run", {"scope": "city"}).json()
        deadline = monotonic() + 300
        while run["state"] not in ("done", "failed") and monotonic() < deadline:
            sleep(0.5)
            run = self.http.get(f"/api/v1/pairings/runs/{run['id']}").json()
        if run["state"] != "done":
            raise click.ClickException(f"the pairing run ended {run['state']}: {run['error']}")
        click.echo(f"pairing run (city): {_short(run['result'])}")

    def live(self, members: dict[str, list[str]], busy: int, sweep: Callable[[], None]) -> None:
        """Walk the month day by day; every third day ``busy`` members claim, fulfil and
        record, and staff verify (in the morning or the evening). At each hour of
        ``SWEEP_HOURS`` the scheduler's sweeps run (``sweep``): reminders, due messages,
        report slots."""
        ids = list(members)
        day = self.clock.now().astimezone(CAMPAIGN_TZ).date()  # the eve: the kick-off notice
        while day <= self.end + timedelta(days=1):  # the final report: the day after
            step = (day - self.start).days
            work_hour: int | None = None  # members work every third day of the campaign
            if day <= self.end and step % 3 == 0:
                # every other work day after office hours: what the work tells members
                # waits for the morning (quiet hours)
                work_hour = 9 if step % 6 == 0 else 21
            for hour in SWEEP_HOURS if day <= self.end else (8, 9, 10):
                if _at(day, hour) < self.clock.now():
                    continue
                self.clock.set(_at(day, hour))
                if hour == work_hour:
                    # a core of keen members (twice ``busy``) does most of the month's work
                    for member_id in self.rng.sample(ids[: busy * 2], min(len(ids), busy)):
                        self._one_day(member_id, members[member_id], day)
                sweep()
            day += timedelta(days=1)

    def _one_day(self, member_id: str, communities: list[str], day: date) -> None:
        community = self.rng.choice(communities)
        kind = self.rng.choice(KINDS)
        record = self._post(
            "/api/v1/activities",
            {"member_id": member_id, "kind": kind, "community_code": community,
             "date": str(day), "hours": self.rng.choice((1.5, 2, 3))},
        )  # fmt: skip
        if record.status_code == 201 and self.rng.random() < 0.9:
            self._post(f"/api/v1/activities/{record.json()['id']}/verify")
        if self.rng.random() < 0.15:
            member = self.as_member(member_id)  # a member claims and fulfils for themself
            recommended = member.get(f"/api/v1/members/{member_id}/wishes/recommended")
            for wish in recommended.json()[:1] if recommended.is_success else []:
                path = f"/api/v1/wishes/{wish['id']}"
                if member.post(f"{path}/claim", json={"member_id": member_id}).is_success:
                    member.post(f"{path}/fulfil")
                    self._post(f"{path}/confirm")  # community staff confirm it was done
        if self.rng.random() < 0.1:
            teams = self.http.get(f"/api/v1/communities/{community}/teams").json()
            for team in teams[:1]:
                self._post(f"/api/v1/teams/{team['id']}/members", {"member_id": member_id})

    def report(self, members: dict[str, list[str]]) -> None:
        """双对接率, the wish funnel and five-ones completion, as the services see them."""
        dual = total = 0
        for code in COMMUNITIES:
            figures = self.http.get(f"/api/v1/communities/{code}/pairing-report").json()
            dual += figures.get("dual_paired", 0)
            total += figures.get("confirmed", 0)
        funnel: Counter[str] = Counter()
        for code in COMMUNITIES:
            for wish in self.http.get("/api/v1/wishes", params={"community_code": code}).json():
                funnel[wish["state"]] += 1
        items: Counter[str] = Counter()
        complete = 0
        for member_id in members:
            progress = self.http.get(f"/api/v1/members/{member_id}/progress").json()
            items.update(k for k in (*KINDS, "wish", "team") if progress.get(k))
            complete += bool(progress.get("complete"))
        click.echo("\nthe month in figures:")
        click.echo(f"  {dual:>6}  of {total} confirmed community members dual-paired (双对接)")
        click.echo("  wishes: " + ", ".join(f"{s} {n}" for s, n in sorted(funnel.items())))
        click.echo(
            f"  five ones (of {len(members)} self-registered members): "
            + ", ".join(f"{k} {items[k]}" for k in (*KINDS, "wish", "team"))
            + f"; all five {complete}"
        )


def _at(day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=CAMPAIGN_TZ)


def _short(result: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in result.items() if isinstance(v, int | float))
