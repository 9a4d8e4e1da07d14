"""``servicemonth demo``: the whole system on the embedded default, end to end.

It starts every service as ``servicemonth up`` does, loads the sample directory, registers
synthetic members through the HTTP API and waits until every service has received them,
then prints what each service holds. The counts must agree.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import click
import httpx

from services.registration.rules import check_character
from shared.config import settings
from shared.vocabulary import AVAILABILITY, SKILLS

SAMPLE_DIRECTORY = Path(__file__).parent / "registration" / "data" / "sample_directory.csv"
MARKER = ".servicemonth-demo"
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
GIVEN = "建国秀英志强丽华海燕文博春梅晓东玉兰新民红霞国庆"
MOBILE_PREFIXES = ["135", "138", "139", "150", "152", "158", "186", "189", "199"]
REGIONS = ["410302", "410303", "410305", "410306", "410311", "410381"]


def synthetic_member(
    rng: random.Random, units: list[str], communities: list[str]
) -> dict[str, Any]:
    born = date(rng.randint(1960, 1995), rng.randint(1, 12), rng.randint(1, 28))
    body = f"{rng.choice(REGIONS)}{born:%Y%m%d}{rng.randint(0, 999):03d}"
    name = rng.choice(SURNAMES) + "".join(rng.sample(GIVEN, rng.choice((1, 2))))
    return {
        "name": name,
        "id_number": body + check_character(body),
        "phone": f"{rng.choice(MOBILE_PREFIXES)}{rng.randint(0, 99_999_999):08d}",
        "unit_code": rng.choice(units),
        "residence_community_code": rng.choice(communities),
        "skills": rng.sample(SKILLS, 2),
        "availability": rng.sample(AVAILABILITY, 1),
        "is_leader_cadre": rng.random() < 0.05,
        "consent": True,
    }


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


def run(members: int = 300, port: int | None = None, timeout: float = 180.0) -> int:
    config = settings()
    home = config.home
    _prepare_home(home)
    click.echo(f"demo home: {home}  (broker: {config.broker_url()})")
    _cli("migrate")
    click.echo(_cli("directory", "load", str(SAMPLE_DIRECTORY)))
    admin = _cli("token", "create", "--role", "admin", "--scope", "city", "--label", "demo")

    port = port or _free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "services.cli", "up", "--port", str(port)])
    try:
        headers = {"Authorization": f"Bearer {admin}"}
        with httpx.Client(base_url=base, timeout=30, headers=headers) as http:
            _wait_healthy(http, server)
            registered = _register(http, members)
            counts = _wait_for_counts(http, registered, timeout)
        return _report(counts, registered, config.outbox_dir / "sms.jsonl")
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


def _register(http: httpx.Client, members: int) -> int:
    rng = random.Random(2016)
    units = ["U410300001", "U410300002", "U410303001", "U410305001", "U410311001"]
    communities = [
        "410303001001", "410303001002", "410303002001",
        "410305001001", "410305001002", "410311001001",
    ]  # fmt: skip
    registered = refused = 0
    started = time.monotonic()
    with click.progressbar(range(members), label="registering members") as bar:
        for _ in bar:
            response = http.post("/api/v1/members", json=synthetic_member(rng, units, communities))
            if response.status_code == 201:
                registered += 1
            else:
                refused += 1
    elapsed = time.monotonic() - started
    click.echo(
        f"registered {registered} members through POST /api/v1/members "
        f"({refused} refused) in {elapsed:.1f} s"
    )
    return registered


def _wait_for_counts(http: httpx.Client, expected: int, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    counts: dict[str, Any] = {}
    while time.monotonic() < deadline:
        counts = {name: _get(http, f"/api/v1/ops/{name}") for name in _SERVICES}
        counts["summary"] = _get(http, "/api/v1/summary?scope=city")
        if (
            counts["pairing"]["members"] >= expected
            and counts["notify"]["messages_sent"] >= expected
            and counts["reporting"]["members"] >= expected
        ):
            break
        time.sleep(0.5)
    return counts


_SERVICES = ("registration", "pairing", "notify", "reporting")


def _get(http: httpx.Client, path: str) -> dict[str, Any]:
    response = http.get(path)
    if response.status_code != 200:
        raise click.ClickException(f"GET {path} answered {response.status_code}: {response.text}")
    body: dict[str, Any] = response.json()
    return body


def _report(counts: dict[str, Any], registered: int, sms_file: Path) -> int:
    lines = sms_file.read_text(encoding="utf-8").splitlines() if sms_file.exists() else []
    rows = [
        ("registration", "members registered", counts["registration"]["members"]),
        ("pairing", "member replicas stored", counts["pairing"]["members"]),
        ("notify", "welcome SMS sent", counts["notify"]["messages_sent"]),
        ("notify", f"lines in {sms_file.name}", len(lines)),
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
    if lines:
        sample = json.loads(lines[0])
        click.echo(f"\na welcome SMS (to {sample['to']}): {sample['text']}")
    agree = all(value == registered for _, _, value in rows)
    click.echo("\ncounts agree" if agree else "\nCOUNTS DISAGREE")
    return 0 if agree else 1


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(run())
