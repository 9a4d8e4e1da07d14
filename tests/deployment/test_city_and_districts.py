"""The city and two districts as separate deployments on this machine's RabbitMQ and
PostgreSQL (issue 14): each its own process group (``servicemonth up``), SERVICEMONTH_HOME,
databases and roles (``deploy postgres-roles``) and RabbitMQ user (``deploy
rabbitmq-definitions``), all on one shared vhost as deploy/README.md sets the city up.

Everything goes through the public contract: the CLI an operator runs, the HTTP API with
the tokens ``servicemonth token create`` prints, the pages with an SMS code.

- A member of a city-level unit living in the second district (涧西区, 410305) registers
  with the city; both her communities (her unit's in 西工区, hers in 涧西区) confirm her
  report-in, the district's pairing pairs her there and the district she lives in alone
  welcomes her (its own outbox).
- The city's summary counts every member of both districts and hers once.
- The leader's report the city builds reaches the city's notify (the e-mail and its files,
  fetched over HTTP) and the city's web app, with no folder shared between deployments.
- A district's RabbitMQ user cannot consume or purge another district's queue, and a
  service's role cannot read another service's tables.
- The city's pairing and notify leave the districts deployed apart to them
  (SERVICEMONTH_SEPARATE_DISTRICTS): she is not told twice.
"""

from __future__ import annotations

import email
import email.policy
import random
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kombu.connection import Connection

from services.demo_data import synthetic_member
from services.demo_web import PageVisitor
from shared.bus import event_queue_name
from shared.config import CAMPAIGN_TZ, CITY
from shared.pii import mask_phone
from tests.deployment.support import (
    Deployment,
    assert_cannot_touch,
    assert_kept_out,
    provisioned,
    wait_for,
)

pytestmark = [pytest.mark.deployment, pytest.mark.production]

RUN = uuid.uuid4().hex[:8]
#: A Monday morning of the campaign (2016-06-26 .. 07-31), outside quiet hours.
MORNING = datetime(2016, 6, 27, 9, 0, tzinfo=CAMPAIGN_TZ)
A, B = "410303", "410305"  # 西工区, 涧西区: districts of the sample directory
CITY_UNIT = "U410300001"  # 洛阳市直机关示例局, a city-level unit
HOME_COMMUNITY = "410305001002"  # 青岛路社区 in 涧西区, where she lives
MEMBER_PHONE = "13911110626"
LEADER_PHONE = "13700000801"
EVENTS_TIMEOUT = 120.0


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Deployment]]:
    """The city (started first) and two districts, each in its own folder; stopped and
    every user, vhost, role and database removed at the end, however the tests end."""
    root = tmp_path_factory.mktemp("city")
    vhost = f"servicemonth-e2e-{RUN}"
    deployments = {
        district: Deployment(
            district, RUN, vhost, root / f"home-{district}", (A, B) if district == CITY else ()
        )
        for district in (CITY, A, B)
    }
    secrets = root / "secrets"
    secrets.mkdir(mode=0o700)
    with provisioned(list(deployments.values()), secrets):
        for deployment in deployments.values():
            deployment.start(MORNING)
        for deployment in deployments.values():
            deployment.wait_ready()
        yield deployments


def register(d: Deployment, token: str, body: dict[str, Any]) -> dict[str, Any]:
    with d.api(token) as http:
        answer = http.post("/members", json=body)
    assert answer.status_code == 201, f"{d.name}: {answer.text}"
    member: dict[str, Any] = answer.json()
    return member


def district_member(seed: int, district: str) -> dict[str, Any]:
    units = {A: ["U410303001"], B: ["U410305001"]}[district]
    communities = {A: ["410303001001", "410303002001"], B: ["410305001001"]}[district]
    return synthetic_member(random.Random(seed), units, communities)


def counted(d: Deployment, scope: str) -> int:
    members: int = d.get("/summary", scope=scope)["members"]
    return members


@pytest.fixture(scope="module")
def her(city: dict[str, Deployment]) -> dict[str, Any]:
    """Members of both districts, and a member of a city-level unit living in 涧西区 who
    reports in at her community there (registered by the city, as her unit's members are)."""
    hub, west, east = city[CITY], city[A], city[B]
    # each district's operator registers members of its own units
    for seed, d in ((1, west), (2, west), (3, east), (4, east)):
        operator = d.token("operator", f"district:{d.district}")
        register(d, operator, district_member(seed, d.district))
    # the city registers a member of a city-level unit who lives in 涧西区
    body = synthetic_member(random.Random(5), [CITY_UNIT], [HOME_COMMUNITY])
    member = register(hub, hub.admin, body | {"phone": MEMBER_PHONE, "is_leader_cadre": False})
    residence = next(r for r in member["registrations"] if r["role"] == "residence")
    assert residence["community_code"] == HOME_COMMUNITY and residence["district_code"] == B

    # 涧西区's community publishes a need (once its pairing knows the community)
    worker = east.token("community", f"community:{HOME_COMMUNITY}")
    need = {"title": "空巢老人陪伴", "category": "空巢老人", "volunteers_needed": 5}

    def published() -> bool:
        with east.api(worker) as http:
            answer = http.post(f"/communities/{HOME_COMMUNITY}/needs", json=need)
        assert answer.status_code in (201, 404), answer.text
        return answer.status_code == 201

    wait_for(published, EVENTS_TIMEOUT, "the district's pairing knows its community")

    # she reports in at both communities: her registrations live in the city's
    # registration, which each community's worker reaches with the city's token for it;
    # her unit's community lies in 西工区, deployed apart too
    for registration in sorted(member["registrations"], key=lambda r: r["role"] != "unit"):
        code = registration["community_code"]
        confirmer = hub.token("community", f"community:{code}")
        with hub.api(confirmer) as http:
            confirmed = http.post(f"/registrations/{registration['id']}/confirm")
        assert confirmed.status_code == 200 and confirmed.json()["state"] == "confirmed"
    assert {r["district_code"] for r in member["registrations"]} == {A, B}
    return member


def told(d: Deployment) -> list[dict[str, Any]]:
    """The SMS ``d``'s notify sent her."""
    return [m for m in d.sms() if m["to"] == mask_phone(MEMBER_PHONE)]


def swept(d: Deployment) -> set[str]:
    """The kinds of SMS ``d`` sent her, once its notify has handed over what is due."""
    with d.api() as http:
        assert http.post("/ops/notify/sweep").status_code == 200
    return {m["kind"] for m in told(d)}


def silent(d: Deployment) -> bool:
    """``d``'s notify sends her nothing: whatever it does with the events it was sent is
    done within a few seconds."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not swept(d):
        time.sleep(0.5)
    return not told(d)


@pytest.mark.timeout(900)
def test_a_city_member_is_paired_and_reminded_in_her_district_and_counted_once_by_the_city(
    city: dict[str, Deployment], her: dict[str, Any]
) -> None:
    hub, west, east = city[CITY], city[A], city[B]
    homes = [d.home.resolve() for d in city.values()]
    assert all(a == b or (a not in b.parents and b not in a.parents) for a in homes for b in homes)

    # 涧西区 pairs her there (the run adds nothing the confirmation did not)
    operator = east.token("operator", f"district:{B}")

    def paired() -> list[dict[str, Any]]:
        with east.api(operator) as http:
            run = http.post("/pairings/run", json={"scope": f"district:{B}"})
            assert run.status_code == 202, run.text  # queued for 涧西区's pairing worker
            answer = http.get(f"/members/{her['id']}/pairings")
        assert answer.status_code in (200, 404), answer.text
        found = answer.json()["pairings"] if answer.status_code == 200 else []
        return [p for p in found if p["state"] != "ended"]

    pairings = wait_for(paired, EVENTS_TIMEOUT, "she is paired in 涧西区")
    assert {p["community_code"] for p in pairings} == {HOME_COMMUNITY}
    assert {p["title"] for p in pairings} == {"空巢老人陪伴"}

    # and 涧西区's notify tells her, from its own home
    wanted = {"welcome", "pairing_made"}
    wait_for(lambda: wanted <= swept(east), EVENTS_TIMEOUT, "涧西区's notify tells her")
    assert "青岛路社区" in next(m["text"] for m in told(east) if m["kind"] == "welcome")
    # 西工区, whose community (her unit's) confirmed her too, leaves her welcome to 涧西区
    assert silent(west)

    # every service of each deployment has everything it was sent
    expected = {CITY: 5, A: 3, B: 3}  # 西工区: her unit's community is there (王城社区)
    for district, d in city.items():
        scope = "city" if district == CITY else f"district:{district}"
        wait_for(
            lambda d=d, scope=scope, n=expected[district]: counted(d, scope) == n or None,
            EVENTS_TIMEOUT,
            f"{d.name} counts {expected[district]} members",
        )
    # the city counts each member once: both districts' and hers (published to both)
    assert counted(hub, "city") == 5
    assert counted(hub, f"district:{A}") == 3 and counted(hub, f"district:{B}") == 3
    listed = hub.get("/summary/members", scope="city", limit=100)
    assert len(listed) == 5 and sum(m["member_id"] == her["id"] for m in listed) == 1


@pytest.mark.timeout(300)
def test_the_city_does_not_tell_a_district_member_again(
    city: dict[str, Deployment], her: dict[str, Any]
) -> None:
    hub, east = city[CITY], city[B]
    wanted = {"welcome", "pairing_made"}
    wait_for(lambda: wanted <= swept(east), EVENTS_TIMEOUT, "涧西区's notify tells her")
    # the same events reached the city's queues
    assert silent(hub)


@pytest.mark.timeout(600)
def test_the_leaders_report_built_by_the_city_reaches_its_notify_and_web_app(
    city: dict[str, Deployment],
) -> None:
    hub = city[CITY]
    with hub.api() as http:
        leader = {"name": "王局长", "phone": LEADER_PHONE, "role": "leader", "scope": "city"}
        assert http.post("/staff", json=leader).status_code in (201, 409)
        subscription = {
            "scope": "city",
            "schedule": "0 10 * * *",  # every morning at 10
            "channels": ["email"],
            "formats": ["html", "xlsx"],
            "name": "市委组织部",
            "email": "leader@example.org",
        }
        made = http.post("/subscriptions", json=subscription)
        assert made.status_code == 201, made.text
        hub.set_clock(MORNING.replace(hour=10) + timedelta(seconds=30))
        tick = http.post("/ops/reporting/tick")
        assert tick.status_code == 200 and tick.json()["claimed"] == 1, tick.text

    def done() -> dict[str, Any] | None:
        reports = hub.get("/reports")
        return next((r for r in reports if r["state"] == "done"), None)

    report = wait_for(done, EVENTS_TIMEOUT, "the city's report is built")
    assert report["scope"] == "city"

    def mailed() -> list[Path]:
        with hub.api() as http:
            http.post("/ops/notify/sweep")
        return hub.emails()

    (eml,) = wait_for(mailed, EVENTS_TIMEOUT, "the city's notify e-mails the report")
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    attached = {  # the workbook attached, the charts inline beside the HTML
        part.get_filename(): part.get_payload(decode=True)
        for part in message.walk()
        if part.get_filename()
    }
    assert {"report.xlsx", "ranking.png", "progress.png"} <= set(attached)
    assert attached["report.xlsx"][:2] == b"PK"
    for district in (A, B):  # the districts heard nothing of it
        assert not city[district].emails()

    # the leader signs in on the city's web app with an SMS code and downloads the same file
    with PageVisitor(hub.url, hub.home / "outbox" / "sms.jsonl") as visitor:
        visitor.sign_in(LEADER_PHONE)
        listed, _ = visitor.open("/leader/reports")
        assert listed.status_code == 200 and report["id"] in listed.text
        got, _ = visitor.open(f"/leader/reports/{report['id']}/files/report.xlsx")
    assert got.status_code == 200 and got.content == attached["report.xlsx"]


@pytest.mark.timeout(300)
def test_a_district_cannot_touch_another_districts_queue_nor_a_service_anothers_tables(
    city: dict[str, Deployment],
) -> None:
    west, east = city[A], city[B]
    theirs = event_queue_name("pairing", east.name)
    with Connection(west.broker_url(), heartbeat=0, connect_timeout=5) as conn:
        assert_cannot_touch(conn, theirs)

    # pairing's role reaches neither registration's database nor, let in, its tables
    registration_db = east.role_url("registration", "registration").rsplit("/", 1)[1]
    assert_kept_out(east.role_url("pairing", "registration"), registration_db, "members")
