"""The demo's walk through the pages: people sign in on the web app exactly as on a phone
(ask for a code, read it in the file outbox, type it in, the form's CSRF token with every
post), open their pages and print what they saw and how long it took.

:class:`PageVisitor` is also how the page tests and the page benchmark sign in.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import click
import httpx

from shared.pii import mask_phone

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
CODE_WAIT = 60.0


def csrf(page: str) -> str:
    found = CSRF.search(page)
    if not found:
        raise click.ClickException("the page carries no CSRF token")
    return found.group(1)


def sms_count(sms_file: Path) -> int:
    return len(sms_file.read_text("utf-8").splitlines()) if sms_file.exists() else 0


def code_for(sms_file: Path, phone: str, after: int, wait: float = CODE_WAIT) -> str:
    """The newest sign-in code sent to ``phone`` in line ``after`` or later of the outbox."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        lines = sms_file.read_text("utf-8").splitlines() if sms_file.exists() else []
        for line in reversed(lines[after:]):
            sms: dict[str, Any] = json.loads(line)
            if sms["kind"] == "sign_in_code" and sms["to"] == mask_phone(phone):
                return str(sms["params"]["code"])
        time.sleep(0.25)
    raise click.ClickException(f"no sign-in code reached {sms_file} within {wait:.0f} s")


class PageVisitor:
    """One person's browser session on the web app, without the browser."""

    def __init__(self, base_url: str, sms_file: Path) -> None:
        self.web = httpx.Client(base_url=base_url, timeout=60, follow_redirects=False)
        self.sms_file = sms_file
        self.token = ""

    def __enter__(self) -> PageVisitor:
        return self

    def __exit__(self, *_: object) -> None:
        self.web.close()

    def sign_in(self, phone: str, account: str = "") -> str:
        """Sign in with the code from the outbox; where the site sent the person next."""
        self.token = csrf(self.web.get("/login").text)
        seen = sms_count(self.sms_file)
        asked = self.web.post("/login/code", data={"csrf": self.token, "phone": phone})
        if asked.status_code != 200:
            raise click.ClickException(f"/login/code answered {asked.status_code}")
        form = {"csrf": self.token, "phone": phone, "code": code_for(self.sms_file, phone, seen)}
        if account:
            form["account"] = account
        signed = self.web.post("/login", data=form)
        if signed.status_code != 303:
            raise click.ClickException(f"/login answered {signed.status_code}")
        return signed.headers["location"]

    def open(self, path: str) -> tuple[httpx.Response, float]:
        """GET ``path``; the answer and the seconds it took."""
        started = time.perf_counter()
        answer = self.web.get(path)
        return answer, time.perf_counter() - started

    def post(self, path: str, data: dict[str, str] | None = None) -> httpx.Response:
        return self.web.post(path, data={"csrf": self.token, **(data or {})})


def tour(base_url: str, home: Path, people: dict[str, str], community: str) -> None:
    """Each of ``people`` (label → phone) opens their first page; the worker also prints
    her community's QR poster and the member her service record, saved under ``home``."""
    sms_file = home / "outbox" / "sms.jsonl"
    saved = home / "web"
    saved.mkdir(exist_ok=True)
    click.echo("\nthe pages (the web app at /, signed in with SMS codes like everyone):")
    downloads = {"member": "/me/record.pdf", "community": "/community/poster.pdf"}
    for label, phone in people.items():
        with PageVisitor(base_url, sms_file) as visitor:
            landing = visitor.sign_in(phone)
            page, seconds = visitor.open(landing)
            calls = page.headers.get("x-api-calls", "?")
            click.echo(
                f"  {label:<10} {mask_phone(phone)} → {landing:<11} {page.status_code}, "
                f"{len(page.content) / 1024:.1f} KB, {calls} API calls, {seconds * 1000:.0f} ms"
            )
            path = downloads.get(label)
            if path:
                got, _ = visitor.open(path)
                target = saved / Path(path).name
                target.write_bytes(got.content)
                click.echo(f"  {'':<10} {path} → {target} ({got.status_code})")
    click.echo(f"  a community's QR link leads to /c/{community}: sign in, register, report in")
