"""``make chaos``: a campaign month on the deployment layout while things break, then a count
of what survived.

The city and two districts (西工区 410303, 涧西区 410305) run as operators deploy them
(tests/deployment/support.py: each its own ``servicemonth up`` process group, RabbitMQ user,
PostgreSQL roles and databases, on this machine's servers, loopback only), with a fake SMS
provider (Aliyun's API) and an SMTP server that both misbehave. Through the HTTP contract the
month registers members, confirms their report-ins, pairs them, records and verifies service
records and builds the leader's daily report, while:

- every few seconds a random consume, worker or scheduler process of a random deployment is
  killed (SIGKILL) and ``up`` brings it back;
- RabbitMQ is restarted once (``rabbitmqctl stop_app`` / ``start_app``) and PostgreSQL once;
- the SMS provider fails or answers only after the sender gave up, part of the time; the
  SMTP server refuses now and then;
- poison messages (not events) are put on each deployment's queues.

Then it reconciles, from each service's own answers: every accepted member, confirmation and
record is in pairing, notify and reporting; reporting's figures equal the sources'; each
member got one welcome SMS, no SMS or e-mail went out twice (counted on the fakes' side);
each report slot ran once; the dead-letter queues hold the poison and nothing else. It
prints a table and ends with ``chaos: <events> events, <faults> faults, lost <n>,
duplicated <n>``; the exit status is 1 unless both are 0.

    .venv/bin/python -m chaos [--size small|full] [--seed 1]

RabbitMQ and PostgreSQL are the machine's: their restarts touch whatever else uses them, so
run it alone (CI runs it after the tests).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
from kombu import Connection, Exchange, Producer
from sqlalchemy import create_engine, text

from chaos.fakes import MailServer, SmsProvider, mail_server, sms_provider
from services.notify.rendering import load_sms_codes
from services.registration.rules import check_character
from shared.bus import event_queue_name
from shared.config import CAMPAIGN_TZ, CITY, SERVICES
from tests.deployment.support import (
    PG_ADMIN,
    SERVICEMONTH,
    Deployment,
    provisioned,
    rabbitmqctl,
    wait_for,
)

A, B = "410303", "410305"
#: Where each deployment's members come from: their units and the communities they live in.
PEOPLE = {
    A: (["U410303001"], ["410303001001", "410303001002", "410303002001"]),
    B: (["U410305001"], ["410305001001", "410305001002"]),
    CITY: (["U410300002"], ["410311001001"]),  # a city-level unit; they live in 洛龙区
}
SHARE = {A: 0.45, B: 0.45, CITY: 0.10}
#: A Monday of the campaign (2016-06-26 .. 07-31), 09:00 in Luoyang: outside quiet hours.
FIRST_DAY = datetime(2016, 6, 27, 9, 0, tzinfo=CAMPAIGN_TZ)
CHILDREN = ("consume", "worker", "scheduler")


@dataclass(frozen=True)
class Size:
    members: int
    records: int  # service records submitted (about half verified)
    days: int  # report slots: the leader's daily report at 10:00
    kill_every: float  # seconds between two kills
    poison: int  # per deployment


SIZES = {
    "small": Size(members=300, records=150, days=2, kill_every=4.0, poison=2),
    "full": Size(members=20_000, records=6_000, days=5, kill_every=3.0, poison=5),
}


@dataclass
class Faults:
    """What was done to the system, and how long it took to come back."""

    kills: Counter[str] = field(default_factory=Counter)
    recoveries: list[float] = field(default_factory=list)
    restarts: list[str] = field(default_factory=list)
    poison: int = 0

    def total(self, sms: SmsProvider, mail: MailServer) -> int:
        return (
            sum(self.kills.values())
            + len(self.restarts)
            + self.poison
            + sms.failures
            + sms.timeouts
            + mail.refusals
        )


@dataclass
class Ledger:
    """What the month's callers were told was accepted (their part of the reconciliation)."""

    members: dict[str, dict[str, Any]] = field(default_factory=dict)  # id → member (201)
    where: dict[str, str] = field(default_factory=dict)  # member id → deployment district
    confirmed: set[str] = field(default_factory=set)  # registration ids
    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # id → record
    verified: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


# --- calling the contract through the faults ------------------------------------------------


def call(
    send: Callable[[], httpx.Response],
    ok: Iterable[int],
    patience: float = 180,
    not_yet: Iterable[int] = (404,),
) -> httpx.Response:
    """``send()`` until it answers one of ``ok``: while a server restarts, connections fail
    and answers are 5xx (503 while a database does not answer); those are retried, and so
    are the ``not_yet`` answers (what an event has not brought yet); anything else is not."""
    wanted, later = set(ok), set(not_yet)
    deadline = time.monotonic() + patience
    wait = 0.2
    while True:
        try:
            answer = send()
            if answer.status_code in wanted:
                return answer
            if answer.status_code < 500 and answer.status_code not in later:
                raise AssertionError(f"{answer.request.url}: {answer.status_code} {answer.text}")
            problem = f"{answer.status_code} {answer.text[:200]}"
        except httpx.TransportError as exc:
            problem = type(exc).__name__
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {patience:.0f} s: {problem}")
        time.sleep(wait)
        wait = min(wait * 2, 5)


def member_body(i: int, district: str) -> dict[str, Any]:
    """Member ``i``: a unique, valid ID number and mobile (no one else has them)."""
    born = date(1960, 1, 1) + timedelta(days=i % 12_000)
    body = f"410303{born:%Y%m%d}{i // 12_000:03d}"
    units, communities = PEOPLE[district]
    return {
        "name": "王李张刘陈杨赵"[i % 7] + "建国秀英志强丽华"[i % 8] + "海燕文博"[i % 4],
        "id_number": body + check_character(body),
        "phone": f"139{i:08d}",
        "unit_code": units[i % len(units)],
        "residence_community_code": communities[i % len(communities)],
        "skills": ["医疗护理"] if i % 2 else [],
        "availability": ["weekend"],
        "is_leader_cadre": i % 40 == 0,
        "consent": True,
    }


class Month:
    def __init__(self, city: dict[str, Deployment], size: Size, seed: int) -> None:
        self.city, self.size = city, size
        self.rng = random.Random(seed)
        self.ledger = Ledger()
        self.now = FIRST_DAY  # the campaign's clock, which every deployment reads
        self.clients = {d: dep.api() for d, dep in city.items()}

    def close(self) -> None:
        for http in self.clients.values():
            http.close()

    def register_all(self) -> None:
        jobs = []
        for i in range(self.size.members):
            district = self.rng.choices(list(SHARE), weights=list(SHARE.values()))[0]
            jobs.append((i, district))
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda job: self.register(*job), jobs))

    def register(self, i: int, district: str) -> None:
        body = member_body(i, district)
        http = self.clients[district]
        # Every member is new: a 409 would mean a first try landed with its answer lost,
        # which only a killed API process could do (none is killed): it fails the run.
        answer = call(lambda: http.post("/members", json=body), (201,))
        member = answer.json() | {"phone_full": body["phone"]}
        with self.ledger.lock:
            self.ledger.members[member["id"]] = member
            self.ledger.where[member["id"]] = district

    def confirm_all(self) -> None:
        by_district: dict[str, list[str]] = {}
        for member_id, member in self.ledger.members.items():
            district = self.ledger.where[member_id]
            by_district.setdefault(district, []).extend(r["id"] for r in member["registrations"])
        for district, ids in by_district.items():
            http = self.clients[district]
            for start in range(0, len(ids), 2000):
                chunk = ids[start : start + 2000]
                answer = call(
                    lambda h=http, c=chunk: h.post("/registrations/confirm", json={"ids": c}),
                    (200,),
                )
                result = answer.json()
                assert not result["refused"], result["refused"][:3]
                self.ledger.confirmed.update(chunk)

    def pair(self) -> None:
        for district in (A, B, CITY):
            scope = "city" if district == CITY else f"district:{district}"
            http = self.clients[district]
            run = call(
                lambda h=http, s=scope: h.post("/pairings/run", json={"scope": s}), (200, 202)
            )
            location = run.headers.get("location")
            if location:
                wait_for(
                    lambda h=http, where=location: (
                        h.get(where.removeprefix("/api/v1")).json().get("state")
                        in ("done", "failed")
                    ),
                    600,
                    f"{district}: the pairing run ends",
                )

    def record_all(self) -> None:
        """Service records in the communities where each member is registered, each accepted
        by the deployment whose pairing serves that community; about half verified."""
        members = list(self.ledger.members.values())
        jobs = []
        for n in range(self.size.records):
            member = members[n % len(members)]
            registration = self.rng.choice(member["registrations"])
            day = FIRST_DAY.date() + timedelta(days=n // len(members))
            hour = 8 + (n // len(members)) % 10
            jobs.append((member, registration, day, hour, n % 2 == 0))
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda job: self.record(*job), jobs))

    def serving(self, community: str) -> str:
        district = community[:6]
        return district if district in (A, B) else CITY

    def record(
        self,
        member: dict[str, Any],
        registration: dict[str, Any],
        day: date,
        hour: int,
        verify: bool,
    ) -> None:
        community = registration["community_code"]
        http = self.clients[self.serving(community)]
        body = {
            "member_id": member["id"],
            "kind": "home_visit",
            "community_code": community,
            "date": day.isoformat(),
            "start_time": f"{hour:02d}:00",
            "end_time": f"{hour + 1:02d}:00",
            "note": "看望空巢老人",
        }
        # until the community's pairing has the confirmed report-in (events under faults)
        answer = call(
            lambda: http.post("/activities", json=body), (201, 409), 600, not_yet=(404, 422)
        )
        if answer.status_code == 409:
            raise AssertionError(f"a record was refused: {answer.text[:200]}")
        record = answer.json()
        with self.ledger.lock:
            self.ledger.records[record["id"]] = record | {"hours": 1.0}
        if verify:
            call(lambda: http.post(f"/activities/{record['id']}/verify"), (200,))
            with self.ledger.lock:
                self.ledger.verified.add(record["id"])

    def subscribe(self) -> None:
        http = self.clients[CITY]
        subscription = {
            "scope": "city",
            "schedule": "0 10 * * *",
            "channels": ["email"],
            "formats": ["html", "xlsx"],
            "name": "市委组织部",
            "email": "leader@example.org",
        }
        call(lambda: http.post("/subscriptions", json=subscription), (201,))

    def report_built(self, reports: int) -> None:
        """Wait (as a day of the month would) until the city has built ``reports`` reports:
        the scheduler, killed now and then, claims each day's slot."""
        hub = self.city[CITY]
        deadline = time.monotonic() + 300
        while True:
            # the campaign's time goes on meanwhile: a build retried after a failed attempt,
            # or taken over once its worker died (reporting's stale timeout), comes due
            self.advance()
            self.sweep()
            states = Counter(r["state"] for r in hub.get("/reports"))
            if states["done"] >= reports:
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the city's report of day {reports}: not built after 300 s; "
                    f"the city's reports by state: {dict(states)}"
                )
            time.sleep(2)

    def advance(self) -> None:
        """A minute of the campaign's time, on every deployment's clock: what waits on it
        (a send stranded by a killed worker, a refused e-mail, a report run to retry or to
        take over) comes due as real time would bring it."""
        self.now += timedelta(minutes=1)
        for deployment in self.city.values():
            deployment.set_clock(self.now)

    def sweep(self) -> None:
        for http in self.clients.values():
            with contextlib.suppress(httpx.HTTPError):
                http.post("/ops/notify/sweep")


# --- faults ----------------------------------------------------------------------------------


def children(deployment: Deployment) -> list[psutil.Process]:
    """``up``'s supervised processes (consume, worker, scheduler), not their own forks."""
    if deployment.process is None:
        return []
    try:
        up = psutil.Process(deployment.process.pid)
        found = []
        for child in up.children():
            with contextlib.suppress(psutil.Error):
                argv = child.cmdline()
                if "services.cli" in argv and any(a in CHILDREN for a in argv):
                    found.append(child)
        return found
    except psutil.Error:
        return []


def role(process: psutil.Process) -> str:
    with contextlib.suppress(psutil.Error):
        argv = process.cmdline()
        kind = next((a for a in argv if a in CHILDREN), None)
        if kind is None:
            return "?"
        rest = argv[argv.index(kind) + 1 : argv.index(kind) + 2]
        return " ".join([kind, *rest])
    return "?"


class Killer(threading.Thread):
    """Every ``every`` seconds, SIGKILL one supervised process of a random deployment; time
    how long ``up`` takes to have it running again."""

    def __init__(self, city: dict[str, Deployment], every: float, faults: Faults, seed: int):
        super().__init__(daemon=True)
        self.city, self.every, self.faults = city, every, faults
        self.rng = random.Random(seed)
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(self.every):
            deployment = self.city[self.rng.choice(list(self.city))]
            running = children(deployment)
            if not running:
                continue
            victim = self.rng.choice(running)
            what = role(victim)
            with contextlib.suppress(psutil.Error):
                victim.send_signal(signal.SIGKILL)
                self.faults.kills[what.split()[0]] += 1
                killed_at = time.monotonic()
                self._recovered(deployment, what, victim.pid, killed_at)

    def _recovered(self, deployment: Deployment, what: str, pid: int, since: float) -> None:
        while not self.stop.is_set() and time.monotonic() - since < 120:
            if any(role(c) == what and c.pid != pid for c in children(deployment)):
                self.faults.recoveries.append(time.monotonic() - since)
                return
            time.sleep(0.1)


def restart_rabbitmq(faults: Faults) -> None:
    rabbitmqctl("stop_app")
    time.sleep(5)
    rabbitmqctl("start_app")
    rabbitmqctl("await_startup", "--timeout", "120")
    faults.restarts.append("rabbitmq")


def restart_postgres(faults: Faults | None = None) -> None:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    ctl = ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main"]
    subprocess.run([*ctl, "restart", "-m", "fast"], check=True, capture_output=True, timeout=120)
    if faults is not None:
        faults.restarts.append("postgresql")


#: PostgreSQL connections the three deployments need: about 30 each under load (an API
#: process with a pool per service, a consume and a worker process per service, the
#: scheduler), plus what the operator's commands and this run open.
CONNECTIONS = 200


def enough_connections(restarts: bool) -> None:
    """Raise the server's ``max_connections`` to :data:`CONNECTIONS` (PostgreSQL's default
    of 100 is too few for three deployments on one server); it takes a restart."""
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        now = int(conn.execute(text("SHOW max_connections")).scalar_one())
        if now < CONNECTIONS and restarts:
            conn.execute(text(f"ALTER SYSTEM SET max_connections = {CONNECTIONS}"))
    admin.dispose()
    if now >= CONNECTIONS:
        return
    if not restarts:
        print(f"chaos: max_connections is {now}: three deployments may run short", flush=True)
        return
    print(f"chaos: raising PostgreSQL's max_connections from {now} to {CONNECTIONS}", flush=True)
    restart_postgres()
    wait_for(
        lambda: subprocess.run(["pg_isready", "-h", "127.0.0.1"]).returncode == 0, 60, "PostgreSQL"
    )


def poison(city: dict[str, Deployment], count: int, faults: Faults) -> dict[str, int]:
    """``count`` messages that are not events on each deployment's pairing queue (through its
    exchange, as a broken publisher would): they must end on its dead-letter queue, alone."""
    sent: dict[str, int] = {}
    vhost = next(iter(city.values())).vhost
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    with Connection(f"amqp://guest:guest@127.0.0.1:5672/{vhost}") as conn:
        producer = Producer(conn.channel())
        for district, deployment in city.items():
            queue = event_queue_name("pairing", deployment.name)
            for n in range(count):
                producer.publish(
                    f"not an event {n}".encode(),
                    exchange=Exchange(""),
                    routing_key=queue,
                    content_type="application/json",
                    content_encoding="utf-8",
                )
            sent[district] = count
            faults.poison += count
    return sent


# --- the reconciliation ----------------------------------------------------------------------


@dataclass
class Count:
    """One line of the table: what should be there, what is, per service."""

    what: str
    expected: int
    found: int

    @property
    def lost(self) -> int:
        return max(0, self.expected - self.found)

    @property
    def duplicated(self) -> int:
        return max(0, self.found - self.expected)


def stats(d: Deployment, service: str) -> dict[str, int]:
    with d.api() as http:
        answer = call(lambda: http.get(f"/ops/{service}"), (200,))
    found: dict[str, int] = answer.json()
    return found


def total(d: Deployment, path: str, **params: Any) -> int:
    with d.api() as http:
        answer = call(lambda: http.get(path, params=params | {"limit": 1}), (200,))
    return int(answer.headers["X-Total-Count"])


def twice(accepted: Counter[str]) -> int:
    """How many acceptances were of something accepted before."""
    return sum(n - 1 for n in accepted.values() if n > 1)


def reconcile(
    month: Month,
    sms: SmsProvider,
    mail: MailServer,
    poisoned: dict[str, int],
    codes: dict[str, str],
) -> list[Count]:
    ledger, city = month.ledger, month.city
    counts: list[Count] = []
    in_district: Counter[str] = Counter()
    for member in ledger.members.values():
        for district in {r["district_code"] for r in member["registrations"]}:
            in_district[district] += 1
    for district, d in city.items():
        own = stats(d, "registration")
        mine = [m for m, where in ledger.where.items() if where == district]
        counts.append(Count(f"{district} registration: members", len(mine), own["members"]))
        confirmed = sum(len(ledger.members[m]["registrations"]) for m in mine)
        counts.append(
            Count(f"{district} registration: confirmed", confirmed, own["registrations_confirmed"])
        )
        for service in SERVICES:
            counts.append(
                Count(
                    f"{district} {service}: events not relayed",
                    0,
                    stats(d, service)["events_pending"],
                )
            )
    hub = city[CITY]
    summary = hub.get("/summary", scope="city")
    counts.append(Count("city reporting: members", len(ledger.members), summary["members"]))
    counts.append(Count("city reporting: reported in", len(ledger.members), summary["reported_in"]))
    counts.append(
        Count(
            "city reporting: verified hours", len(ledger.verified), round(summary["verified_hours"])
        )
    )
    for district in (A, B):
        figures = city[district].get("/summary", scope=f"district:{district}")
        counts.append(
            Count(f"{district} reporting: members", in_district[district], figures["members"])
        )
    by_community: Counter[tuple[str, str]] = Counter()
    for record_id, record in ledger.records.items():
        state = "verified" if record_id in ledger.verified else "submitted"
        by_community[(record["community_code"], state)] += 1
    for state in ("submitted", "verified"):
        expected = sum(n for (_, s), n in by_community.items() if s == state)
        found = sum(
            total(city[month.serving(code)], "/activities", community_code=code, state=state)
            for code in {c for c, _ in by_community}
        )
        counts.append(Count(f"pairing: records {state}", expected, found))
    welcome = codes["welcome"]
    phones = {m["phone_full"] for m in ledger.members.values()}
    accepted, by_kind = sms.counts()
    told = sum(1 for phone in phones if by_kind[(phone, welcome)] >= 1)
    counts.append(Count("notify: members welcomed (SMS)", len(phones), told))
    # twice: one message accepted twice (its OutId), or a member welcomed by two messages
    again = sum(n - 1 for (phone, code), n in by_kind.items() if code == welcome and n > 1)
    counts.append(Count("notify: SMS sent twice", 0, twice(accepted) + again))
    reports = hub.get("/reports")
    slots = Counter(
        (r["subscription_id"], r["period_end"]) for r in reports if r["state"] == "done"
    )
    counts.append(Count("reporting: report slots run", month.size.days, len(slots)))
    counts.append(Count("reporting: a slot run twice", 0, sum(n - 1 for n in slots.values())))
    mailed = mail.counts()
    counts.append(Count("notify: report e-mails", month.size.days, len(mailed)))
    counts.append(Count("notify: e-mail sent twice", 0, twice(mailed)))
    for district, d in city.items():
        letters = json.loads(d.cli("dead-letters", "list", "pairing", "--json") or "[]")
        bodies = [json.dumps(x["body"], ensure_ascii=False) for x in letters]
        poison = [b for b in bodies if "not an event" in b]
        expected = poisoned.get(district, 0)
        counts.append(
            Count(f"{district} pairing: poison dead-lettered", expected, len(set(poison)))
        )
        counts.append(
            Count(
                f"{district} pairing: poison dead-lettered twice", 0, len(poison) - len(set(poison))
            )
        )
        counts.append(
            Count(f"{district} pairing: events dead-lettered", 0, len(bodies) - len(poison))
        )
        for service in ("notify", "reporting"):
            others = json.loads(d.cli("dead-letters", "list", service, "--json") or "[]")
            counts.append(Count(f"{district} {service}: dead letters", 0, len(others)))
    return counts


def in_clear(d: Deployment) -> int:
    """ID numbers and mobiles ``servicemonth pii-scan`` finds in clear in ``d``'s home,
    databases, outbox and event payloads."""
    done = subprocess.run(
        [SERVICEMONTH, "pii-scan"], env=d.env, capture_output=True, text=True, timeout=600
    )
    if done.returncode == 0:
        return 0
    found = [line for line in done.stdout.splitlines() if line.startswith("total:")]
    print(f"chaos: {d.name}: {found or done.stderr[-500:]}", flush=True)
    numbers = [int(word) for word in (found or ["total: 1"])[0].split() if word.isdigit()]
    return sum(numbers[:2]) or 1  # "total: N ID numbers, M mobiles in clear in …"


# --- the run ---------------------------------------------------------------------------------


def environment(endpoint: str, smtp_port: int, codes_file: Path) -> dict[str, str]:
    """What each deployment is given besides its own settings: the fakes."""
    return {
        "SERVICEMONTH_SMS_PROVIDERS": "aliyun",
        "SERVICEMONTH_ALIYUN_ACCESS_KEY_ID": "chaos",
        "SERVICEMONTH_ALIYUN_ACCESS_KEY_SECRET": "chaos-secret",
        "SERVICEMONTH_ALIYUN_SMS_SIGN_NAME": "在职党员进社区",
        "SERVICEMONTH_ALIYUN_SMS_ENDPOINT": endpoint,
        "SERVICEMONTH_SMS_CODES_FILE": str(codes_file),
        "SERVICEMONTH_EMAIL_CHANNEL": "smtp",
        "SERVICEMONTH_SMTP_HOST": "127.0.0.1",
        "SERVICEMONTH_SMTP_PORT": str(smtp_port),
        "SERVICEMONTH_SMTP_FROM": "servicemonth@example.org",
    }


def approved_codes(folder: Path) -> tuple[Path, dict[str, str]]:
    """An Aliyun codes file as a provider grants it (the packaged ones are placeholders)."""
    codes = {kind: f"SMS_9{n:08d}" for n, kind in enumerate(load_sms_codes()["aliyun"], 1)}
    path = folder / "sms-codes.toml"
    path.write_text("[aliyun]\n" + "".join(f'{k} = "{v}"\n' for k, v in codes.items()))
    return path, codes


def settle(
    month: Month, done: Callable[[], bool], timeout: float, counted_so_far: list[Count]
) -> float:
    """Sweep notify until ``done()`` (everything arrived) or ``timeout``: how long it took."""
    started = time.monotonic()
    told = started
    while time.monotonic() - started < timeout:
        month.advance()
        month.sweep()
        with contextlib.suppress(AssertionError, httpx.HTTPError):
            if done():
                break
        if time.monotonic() - told > 60:
            told = time.monotonic()
            waiting = [c.what for c in counted_so_far if c.lost or c.duplicated]
            print(f"chaos: still waiting for {', '.join(waiting)}", flush=True)
        time.sleep(2)
    return time.monotonic() - started


def run(size: Size, seed: int, root: Path, restarts: bool = True) -> int:
    sms, mail = SmsProvider(), MailServer()
    faults = Faults()
    run_id = uuid.uuid4().hex[:8]
    vhost = f"servicemonth-chaos-{run_id}"
    secrets = root / "secrets"
    secrets.mkdir(mode=0o700)
    codes_file, codes = approved_codes(secrets)
    enough_connections(restarts)
    started = time.monotonic()
    with sms_provider(sms) as endpoint, mail_server(mail) as smtp_port:
        extra = environment(endpoint, smtp_port, codes_file)
        city = {
            district: Deployment(
                district, run_id, vhost, root / f"home-{district}",
                (A, B) if district == CITY else (), extra=extra,
            )
            for district in (CITY, A, B)
        }  # fmt: skip
        with provisioned(list(city.values()), secrets):
            for deployment in city.values():
                deployment.start(FIRST_DAY, scheduler=True)
            for deployment in city.values():
                deployment.wait_ready()
            print(f"chaos: three deployments up in {time.monotonic() - started:.0f} s", flush=True)
            month = Month(city, size, seed)
            killer = Killer(city, size.kill_every, faults, seed)
            killer.start()
            poisoned = poison(city, size.poison, faults)
            rabbit = threading.Timer(size.kill_every * 5, restart_rabbitmq, (faults,))
            if restarts:
                rabbit.start()
            try:
                month.register_all()
                print(f"chaos: {len(month.ledger.members)} members registered", flush=True)
                postgres = threading.Thread(target=restart_postgres, args=(faults,))
                if restarts:
                    rabbit.join()
                    postgres.start()
                month.confirm_all()
                if restarts:
                    postgres.join()
                month.pair()
                month.subscribe()
                month.record_all()
                print(f"chaos: {len(month.ledger.records)} records", flush=True)
                for day in range(month.size.days):
                    when = FIRST_DAY + timedelta(days=day, hours=1, seconds=30)
                    month.now = max(when, month.now)  # never back: waits moved it on
                    for deployment in city.values():
                        deployment.set_clock(month.now)
                    month.report_built(day + 1)
            finally:
                killer.stop.set()
                killer.join()
            # the month is over: let what is in flight arrive, then count
            counted: list[Count] = []

            def arrived() -> bool:
                counted[:] = reconcile(month, sms, mail, poisoned, codes)
                return all(c.lost == 0 and c.duplicated == 0 for c in counted)

            waited = settle(month, arrived, 900 if size.members > 1000 else 300, counted)
            # what the month left behind, once: files, logs, outboxes, every table
            for district, d in city.items():
                counted.append(Count(f"{district} pii-scan: in clear", 0, in_clear(d)))
            events = sum(stats(d, s)["events_sent"] for d in city.values() for s in SERVICES)
            month.close()
    took = time.monotonic() - started
    return report(counted, faults, sms, mail, waited, took, events)


def report(
    counted: list[Count], faults: Faults, sms: SmsProvider, mail: MailServer, waited: float,
    took: float, events: int,
) -> int:  # fmt: skip
    width = max(len(c.what) for c in counted)
    print(f"{'':{width}}  expected    found  lost  twice")
    for c in counted:
        print(f"{c.what:{width}}  {c.expected:8}  {c.found:7}  {c.lost:4}  {c.duplicated:5}")
    lost = sum(c.lost for c in counted)
    duplicated = sum(c.duplicated for c in counted)
    kills = ", ".join(f"{kind} {n}" for kind, n in sorted(faults.kills.items()))
    slowest = max(faults.recoveries, default=0.0)
    restarted = ", ".join(faults.restarts) or "nothing"
    accepted = sum(sms.counts()[0].values())
    print(
        f"\nfaults: killed {sum(faults.kills.values())} ({kills}); restarted {restarted}; "
        f"SMS failed {sms.failures}, answered after the sender gave up {sms.timeouts}; "
        f"SMTP refused {mail.refusals}; poison {faults.poison}\n"
        f"messages: SMS accepted {accepted}, e-mails {sum(mail.counts().values())}\n"
        f"slowest recovery of a killed process: {slowest:.1f} s; "
        f"settled {waited:.0f} s after the month; {took / 60:.1f} min in all"
    )
    faulted = faults.total(sms, mail)
    print(f"chaos: {events} events, {faulted} faults, lost {lost}, duplicated {duplicated}")
    return 0 if lost == 0 and duplicated == 0 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--no-restarts",
        dest="restarts",
        action="store_false",
        help="leave the machine's RabbitMQ and PostgreSQL running (others use them now)",
    )
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="servicemonth-chaos-"))
    status = 1
    try:
        status = run(SIZES[args.size], args.seed, root, args.restarts)
    finally:
        if status == 0:
            shutil.rmtree(root, ignore_errors=True)
        else:  # each deployment's up.log, outboxes and state, for whoever looks next
            print(f"chaos: kept {root}", file=sys.stderr)
    return status
