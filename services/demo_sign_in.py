"""The demo's front door: a resident and a community worker sign in with an SMS code.

Both go through the HTTP contract exactly as a phone would: ask for a code, read it where
the person at the machine reads it (``var/outbox/sms.jsonl``, the number masked), open a
session with it. The resident's number belongs to no one yet, so her session may only
register herself; the registration answers with her member session. The worker's account
is created by the operator (``POST /api/v1/staff``); signed in, she confirms the resident's
report-in in her community.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import click
import httpx

from services.demo_data import synthetic_member
from shared.pii import mask_phone

RESIDENT_PHONE = "13700000626"  # 137: a prefix no synthetic member has
WORKER_PHONE = "13700000701"
LEADER_PHONE = "13700000801"
UNIT_PHONE = "13700000901"
CODE_WAIT = 60.0


def _code_from_outbox(sms_file: Path, phone: str, after: int) -> str:
    """The newest sign-in code SMS to ``phone`` written after line ``after``."""
    deadline = time.monotonic() + CODE_WAIT
    while time.monotonic() < deadline:
        lines = sms_file.read_text(encoding="utf-8").splitlines() if sms_file.exists() else []
        for line in reversed(lines[after:]):
            sms = json.loads(line)
            if sms["kind"] == "sign_in_code" and sms["to"] == mask_phone(phone):
                code: str = sms["params"]["code"]
                return code
        time.sleep(0.3)
    raise click.ClickException(f"no sign-in code reached {sms_file} within {CODE_WAIT:.0f} s")


def sign_in(
    base_url: str, sms_file: Path, phone: str, **choice: str
) -> tuple[httpx.Client, dict[str, Any]]:
    """Sign ``phone`` in by SMS code; a client holding the session, and the session."""
    anonymous = httpx.Client(base_url=base_url, timeout=30)
    seen = len(sms_file.read_text(encoding="utf-8").splitlines()) if sms_file.exists() else 0
    asked = anonymous.post("/api/v1/auth/codes", json={"phone": phone})
    if asked.status_code != 202:
        raise click.ClickException(f"POST /auth/codes answered {asked.status_code}: {asked.text}")
    code = _code_from_outbox(sms_file, phone, seen)
    opened = anonymous.post("/api/v1/auth/sessions", json={"phone": phone, "code": code, **choice})
    if opened.status_code != 201:
        raise click.ClickException(
            f"POST /auth/sessions answered {opened.status_code}: {opened.text}"
        )
    session: dict[str, Any] = opened.json()
    anonymous.headers["Authorization"] = f"Bearer {session['token']}"
    click.echo(
        f"  {mask_phone(phone)}: code read in {sms_file.name}, signed in as "
        f"{session['role']} ({session['scope'][:24]}…), until {session['expires_at'][:16]}"
    )
    return anonymous, session


def front_door(admin: httpx.Client, sms_file: Path, community: str, unit: str) -> int:
    """A resident registers herself by phone; the community's worker signs in and confirms
    her report-in there. Returns the members it registered (one)."""
    base = str(admin.base_url)
    click.echo("\nthe front door: sign-in with an SMS code (手机号 + 验证码)")
    resident, _ = sign_in(base, sms_file, RESIDENT_PHONE)
    body = synthetic_member(random.Random(626), [unit], [community])
    registered = resident.post("/api/v1/members", json={**body, "phone": RESIDENT_PHONE})
    if registered.status_code != 201:
        raise click.ClickException(
            f"self-registration answered {registered.status_code}: {registered.text}"
        )
    member = registered.json()
    resident.headers["Authorization"] = f"Bearer {member['session']['token']}"
    own = resident.get(f"/api/v1/members/{member['id']}").json()
    click.echo(
        f"  she registered herself and now holds a member session: {own['name']}, "
        f"ID {own['id_number']}, phone {own['phone']}"
    )

    created = admin.post(
        "/api/v1/staff",
        json={
            "name": "周社工",
            "phone": WORKER_PHONE,
            "role": "community",
            "scope": f"community:{community}",
        },
    )
    if created.status_code not in (200, 201):
        raise click.ClickException(f"POST /staff answered {created.status_code}: {created.text}")
    for account in (
        {"name": "钱主任", "phone": LEADER_PHONE, "role": "leader", "scope": "city"},
        {"name": "孙组织员", "phone": UNIT_PHONE, "role": "unit", "scope": f"unit:{unit}"},
    ):
        made = admin.post("/api/v1/staff", json=account)
        if made.status_code not in (200, 201):
            raise click.ClickException(f"POST /staff answered {made.status_code}: {made.text}")
    worker, _ = sign_in(base, sms_file, WORKER_PHONE)
    here = next(r for r in member["registrations"] if r["community_code"] == community)
    confirmed = worker.post(f"/api/v1/registrations/{here['id']}/confirm")
    elsewhere = next(r for r in member["registrations"] if r["community_code"] != community)
    foreign = worker.post(f"/api/v1/registrations/{elsewhere['id']}/confirm")
    click.echo(
        f"  the worker of community {community} confirmed her report-in there "
        f"({confirmed.status_code}); in community {elsewhere['community_code']}: "
        f"{foreign.status_code} (not hers to see)"
    )
    for client in (resident, worker):
        client.delete("/api/v1/auth/sessions")
        client.close()
    return 1


def how_to_look(home: Path, community: str) -> None:
    """The last words of the demo: how the person at the machine opens the month it built."""
    click.echo(
        "\nlook at the month in a browser (a phone's width suits the pages best):\n"
        f"  SERVICEMONTH_HOME={home} .venv/bin/servicemonth up --port 8000\n"
        "  then open http://127.0.0.1:8000/ and sign in with a mobile number:\n"
        f"    {RESIDENT_PHONE}  a member (she registered herself and reported in)\n"
        f"    {WORKER_PHONE}  the community worker of {community}\n"
        f"    {LEADER_PHONE}  a leader of the whole city\n"
        f"    {UNIT_PHONE}  the organiser of the member's unit\n"
        f"  the SMS code arrives in {home / 'outbox' / 'sms.jsonl'} (the newest line for that\n"
        f"  number, masked: tail -1 {home / 'outbox' / 'sms.jsonl'})\n"
        f"  a community's QR link: http://127.0.0.1:8000/c/{community}\n"
        f"  reports: {home / 'reports'}/<id>/report.html · messages: {home / 'outbox'}/"
    )
