"""``servicemonth demo``: the whole system on the embedded default, end to end.

It starts every service as ``servicemonth up`` does (but without the scheduler: the month
fires the sweeps itself, at its simulated hours), loads the sample directory, registers
synthetic members through the HTTP API and waits until every service has received them,
then prints what each service holds. The counts must agree.
"""

from __future__ import annotations

import json
import random
import shutil
import socket
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any

import click
import httpx

from services.demo_campaign import Month
from services.demo_data import (
    COMMUNITIES,
    ROSTER_MISTAKES,
    SAMPLE_DIRECTORY,
    UNITS,
    roster_xlsx,
    synthetic_member,
)
from services.demo_outreach import Outreach, get_json
from services.demo_sign_in import (
    LEADER_PHONE,
    RESIDENT_PHONE,
    UNIT_PHONE,
    WORKER_PHONE,
    front_door,
    how_to_look,
)
from services.demo_web import tour
from services.processes import die_with_parent
from services.registration import sessions
from shared.clock import SimulatedClock
from shared.config import CAMPAIGN_TZ, export, settings

MARKER = ".servicemonth-demo"
SERVICES = ("registration", "pairing", "notify", "reporting")
ROSTER_UNIT = "U410303001"
ROSTER_ROWS = 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _prepare_home(home: Path) -> None:
    """The demo starts from a clean state, but never wipes a home it did not create."""
    if home.exists() and any(home.iterdir()):
        if not (home / MARKER).exists():
            raise click.ClickException(
                f"{home} holds data that is not the demo's; set SERVICEMONTH_HOME to another folder"
            )
        shutil.rmtree(home)
    home.mkdir(parents=True, exist_ok=True)
    (home / MARKER).write_text(
        "created by servicemonth demo; the next demo run wipes this folder\n"
    )


def _cli(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", *args], check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


def run(members: int = 200, port: int | None = None, busy: int = 30, timeout: float = 180.0) -> int:
    config = settings()
    home = config.home
    _prepare_home(home)
    click.echo(f"demo home: {home}  (broker: {config.broker_url()})")
    _cli("migrate")
    click.echo(_cli("directory", "load", str(SAMPLE_DIRECTORY)))
    admin = _cli("token", "create", "--role", "admin", "--scope", "city", "--label", "demo")

    # Every process of the demo shares one simulated clock, set to the morning before the
    # campaign: members register and communities publish before the kick-off.
    clock_file = home / "clock"
    eve = config.campaign_start - timedelta(days=1)
    SimulatedClock(datetime.combine(eve, clock_time(8), CAMPAIGN_TZ), clock_file)
    export("SERVICEMONTH_CLOCK_FILE", str(clock_file))  # for the processes started below
    # the QR poster the demo prints points where the person at the machine will look
    export("SERVICEMONTH_PUBLIC_URL", "http://127.0.0.1:8000", replace=False)
    # the services' INFO lines (an access line per request) would bury the demo's report
    export("SERVICEMONTH_LOG_LEVEL", "WARNING", replace=False)
    port = port or _free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        # without the scheduler: the month fires the sweeps itself, at its simulated hours
        [sys.executable, "-m", "services.cli", "up", "--port", str(port), "--no-scheduler"],
        preexec_fn=die_with_parent,  # and its own children with it, however the demo ends
    )
    try:
        headers = {"Authorization": f"Bearer {admin}"}
        with httpx.Client(base_url=base, timeout=60, headers=headers) as http:
            _wait_healthy(http, server)
            outreach = Outreach(
                http, config.campaign_start, config.campaign_end, config.reports_dir
            )
            outreach.set_up()
            from_roster = _import_roster(http)
            people = _register(http, members)
            registered = from_roster + len(people)
            registered += front_door(
                http, config.outbox_dir / "sms.jsonl", COMMUNITIES[3], UNITS[0]
            )
            confirmed_ids = _confirm_reports_in(http)
            counts = _wait_for_counts(http, registered, timeout)
            agree = _report(counts, registered, config.outbox_dir / "sms.jsonl")
            outreach.forecast(_cli("notify", "forecast"))
            month = Month(
                http,
                lambda member: _member_client(http, member),
                clock_file,
                config.campaign_start,
                config.campaign_end,
            )
            month.publish()
            month.pair()
            active = _confirmed_communities(people, confirmed_ids)
            month.live(active, busy, outreach.sweep)
            month.report(active)
            outreach.finish()
            visitors = {
                "member": RESIDENT_PHONE,
                "community": WORKER_PHONE,
                "unit": UNIT_PHONE,
                "leader": LEADER_PHONE,
            }
            tour(base, home, visitors, COMMUNITIES[3])
        click.echo("\ncounts agree" if agree else "\nCOUNTS DISAGREE")
        how_to_look(home, COMMUNITIES[3])
        return 0 if agree else 1
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()


def _wait_healthy(http: httpx.Client, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise click.ClickException("servicemonth up exited before answering")
        try:
            if http.get("/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise click.ClickException("the services did not become healthy within 60 s")


def _import_roster(http: httpx.Client) -> int:
    """A unit uploads its roster (xlsx, with a few mistakes); the registration worker imports it."""
    click.echo(f"\nunit {ROSTER_UNIT} uploads a roster of {ROSTER_ROWS} rows (xlsx)")
    files = {"file": ("花名册.xlsx", roster_xlsx(ROSTER_ROWS), "application/vnd.ms-excel")}
    created = http.post("/api/v1/rosters", files=files, data={"unit_code": ROSTER_UNIT})
    if created.status_code != 202:
        raise click.ClickException(f"roster upload answered {created.status_code}: {created.text}")
    roster_id = created.json()["id"]
    deadline = time.monotonic() + 120
    result = get_json(http, f"/api/v1/rosters/{roster_id}")
    while result["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.5)
        result = get_json(http, f"/api/v1/rosters/{roster_id}")
    click.echo(
        f"  {result['status']}: {result['total']} rows, {result['accepted']} accepted, "
        f"{result['rejected']} rejected, {result['duplicates']} already registered"
    )
    for error in result["errors"][:10]:
        click.echo(f"  row {error['row']:>4}  {error['field']:<24} {error['message']}")
    click.echo(
        f"  (the demo put {len(ROSTER_MISTAKES)} mistakes in; the failed rows come back as "
        f"GET /api/v1/rosters/{roster_id}/errors.xlsx)"
    )
    accepted: int = result["accepted"]
    return accepted


def _register(http: httpx.Client, members: int) -> list[dict[str, Any]]:
    rng = random.Random(2016)
    registered: list[dict[str, Any]] = []
    refused = 0
    started = time.monotonic()
    with click.progressbar(range(members), label="\nthe operator registers members") as bar:
        for _ in bar:
            response = http.post("/api/v1/members", json=synthetic_member(rng, UNITS, COMMUNITIES))
            if response.status_code == 201:
                registered.append(response.json())
            else:
                refused += 1
    elapsed = time.monotonic() - started
    click.echo(
        f"registered {len(registered)} members through POST /api/v1/members "
        f"({refused} refused) in {elapsed:.1f} s"
    )
    return registered


_MEMBER_CLIENTS: dict[str, httpx.Client] = {}


def _member_client(http: httpx.Client, member_id: str) -> httpx.Client:
    """A client holding the member's own session (a member acts for themself only). The
    front door shows two people signing in by SMS code; for the hundreds of simulated
    members the demo signs their sessions with registration's key, as a sign-in would."""
    if member_id not in _MEMBER_CLIENTS:
        secret = sessions.member_session(settings(), uuid.UUID(member_id))["token"]
        _MEMBER_CLIENTS[member_id] = httpx.Client(
            base_url=http.base_url, timeout=30, headers={"Authorization": f"Bearer {secret}"}
        )
    return _MEMBER_CLIENTS[member_id]


def _confirmed_communities(
    people: list[dict[str, Any]], confirmed_ids: set[str]
) -> dict[str, list[str]]:
    """Member id → the communities where their report-in was confirmed (if any)."""
    found = {
        p["id"]: [r["community_code"] for r in p["registrations"] if r["id"] in confirmed_ids]
        for p in people
    }
    return {member: codes for member, codes in found.items() if codes}


def _confirm_reports_in(http: httpx.Client) -> set[str]:
    """Each community confirms most of its list (报到确认); some members have not come yet."""
    rng = random.Random(626)
    confirmed: set[str] = set()
    for code in COMMUNITIES:
        waiting = http.get(
            "/api/v1/registrations",
            params={"community_code": code, "state": "submitted", "limit": 1000},
        ).json()
        ids = [r["id"] for r in waiting if rng.random() < 0.85]
        if ids:
            result = http.post("/api/v1/registrations/confirm", json={"ids": ids}).json()
            refused = {r["id"] for r in result["refused"]}
            confirmed |= {i for i in ids if i not in refused}
    click.echo(f"communities confirmed {len(confirmed)} reports-in (报到)")
    return confirmed


def _wait_for_counts(http: httpx.Client, expected: int, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    counts: dict[str, Any] = {}
    previous: dict[str, Any] = {}
    while time.monotonic() < deadline:
        counts = {name: get_json(http, f"/api/v1/ops/{name}") for name in SERVICES}
        counts["summary"] = get_json(http, "/api/v1/summary?scope=city")
        welcomes = get_json(http, "/api/v1/ops/notify/summary")["per_kind"].get("welcome", {})
        counts["welcomes"] = welcomes.get("sent", 0)
        settled = counts == previous  # nothing moved for a whole poll
        if (
            settled
            and counts["registration"]["events_pending"] == 0
            and counts["pairing"]["members"] >= expected
            and counts["notify"]["contacts"] >= expected
            and counts["reporting"]["members"] >= expected
            and counts["welcomes"] >= counts["summary"]["reported_in"]
        ):
            break
        previous = counts
        time.sleep(1.0)
    return counts


def _report(counts: dict[str, Any], registered: int, sms_file: Path) -> bool:
    lines = sms_file.read_text(encoding="utf-8").splitlines() if sms_file.exists() else []
    rows = [
        ("registration", "members registered", counts["registration"]["members"]),
        ("pairing", "member replicas stored", counts["pairing"]["members"]),
        ("notify", "member contacts kept", counts["notify"]["contacts"]),
        ("reporting", "members counted (city)", counts["summary"]["members"]),
    ]
    click.echo("\nper service, what it received:")
    for service, what, value in rows:
        click.echo(f"  {service:<13} {what:<28} {value:>6}")
    click.echo(
        "  events: registration sent {sent}, pending {pending}".format(
            sent=counts["registration"]["events_sent"],
            pending=counts["registration"]["events_pending"],
        )
    )
    summary = counts["summary"]
    click.echo("\nregistration figures (city, GET /api/v1/summary):")
    for key, label in (
        ("members", "members registered"),
        ("reported_in", "reported in (≥1 community confirmed)"),
        ("dual_registered", "dual-registered (双注册)"),
        ("leading_cadres", "leading cadres (县处级以上)"),
    ):
        click.echo(f"  {summary[key]:>6}  {label}")
    reported_in, welcomes = summary["reported_in"], counts["welcomes"]
    click.echo(
        f"\nwelcome messages sent on the confirmed report-in: {welcomes} "
        f"(members reported in: {reported_in}); {len(lines)} lines in {sms_file}"
    )
    sample = next((m for m in map(json.loads, lines) if m["kind"] == "welcome"), None)
    if sample:
        click.echo(f"a welcome SMS (to {sample['to']}): {sample['text']}")
    return all(value == registered for _, _, value in rows) and welcomes == reported_in


if __name__ == "__main__":  # pragma: no cover
    export("PYTHONUNBUFFERED", "1", replace=False)
    sys.exit(run())
