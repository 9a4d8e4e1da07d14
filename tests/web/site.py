"""A real servicemonth for the page tests: ``servicemonth up`` in its own processes on the
embedded default, in a throw-away home, on a simulated clock inside the campaign.

People sign in through the pages exactly as on a phone: ask for a code, read it from the
file channel (``var/outbox/sms.jsonl``), type it in. Setting up what a test needs (staff
accounts, a published wish) goes through the public API with an admin token made by
``servicemonth token create``, as an operator would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from services.demo_data import SAMPLE_DIRECTORY
from services.demo_web import PageVisitor, code_for
from services.demo_web import csrf as csrf  # the page tests read form tokens with it
from services.processes import die_with_parent
from shared.clock import SimulatedClock
from shared.config import CAMPAIGN_TZ
from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "web"
#: A campaign morning (the campaign runs 2016-06-26 .. 2016-07-31).
NOW = datetime(2016, 7, 4, 9, 30, tzinfo=CAMPAIGN_TZ)
#: Communities and units of the sample directory.
COMMUNITY = "410303001001"
OTHER_COMMUNITY = "410303002001"
UNIT = "U410303001"


class Site:
    """One running servicemonth, its home, and ways in."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "SERVICEMONTH_HOME": str(home),
            "SERVICEMONTH_CLOCK_FILE": str(home / "clock"),
        }
        for key in ("SERVICEMONTH_DATABASE_URL", "SERVICEMONTH_BROKER_URL", "SERVICEMONTH_PII_KEY"):
            self.env.pop(key, None)
        self.server: subprocess.Popen[bytes] | None = None
        self.admin_token = ""

    # --- life ------------------------------------------------------------------------------

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "services.cli", *args],
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        )
        return done.stdout.strip()

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        SimulatedClock(NOW, self.home / "clock")
        self.cli("migrate")
        self.cli("directory", "load", str(SAMPLE_DIRECTORY))
        self.admin_token = self.cli(
            "token", "create", "--role", "admin", "--scope", "city", "--label", "page-tests"
        )
        with (self.home / "up.log").open("wb") as log:  # the child keeps its own descriptor
            up = ["up", "--port", str(self.port), "--no-scheduler"]
            self.server = subprocess.Popen(
                [sys.executable, "-m", "services.cli", *up],
                preexec_fn=die_with_parent,  # and its children with it, however the run ends
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise RuntimeError(f"servicemonth up exited: {(self.home / 'up.log').read_text()}")
            try:
                with httpx.Client() as probe:
                    healthy = probe.get(self.url + "/healthz", timeout=2).status_code == 200
                if healthy:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError("servicemonth up did not answer within 90 s")

    def stop(self) -> None:
        if self.server is not None:
            self.server.terminate()
            try:
                self.server.wait(30)
            except subprocess.TimeoutExpired:
                self.server.kill()

    # --- the API, as an admin ----------------------------------------------------------------

    def api(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.url + "/api/v1",
            headers={"Authorization": f"Bearer {token or self.admin_token}"},
            timeout=30,
        )

    def staff(self, phone: str, role: str, scope: str, name: str = "李红") -> dict[str, Any]:
        """A staff account (community worker, unit organiser, leader), made by the admin."""
        with self.api() as api:
            answer = api.post(
                "/staff", json={"name": name, "phone": phone, "role": role, "scope": scope}
            )
            assert answer.status_code in (201, 409), answer.text
            return dict(answer.json())

    def wait(self, what: Any, timeout: float = 30.0) -> Any:
        """Poll ``what()`` until it returns something truthy (events travel between processes)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = what()
            if found:
                return found
            time.sleep(0.25)
        raise AssertionError(f"nothing after {timeout} s")

    # --- signing in, as a phone does -------------------------------------------------------

    @property
    def sms_file(self) -> Path:
        return self.home / "outbox" / "sms.jsonl"

    def sms_lines(self) -> list[dict[str, Any]]:
        if not self.sms_file.exists():
            return []
        return [json.loads(line) for line in self.sms_file.read_text("utf-8").splitlines()]

    def code_for(self, phone: str, after: int) -> str:
        """The newest sign-in code sent to ``phone`` in SMS line ``after`` or later."""
        return code_for(self.sms_file, phone, after, wait=30)

    @contextmanager
    def browser_client(self, phone: str, account: str = "") -> Iterator[httpx.Client]:
        """An HTTP client signed in through the pages (cookies, CSRF), as a browser would."""
        with PageVisitor(self.url, self.sms_file) as visitor:
            visitor.sign_in(phone, account)
            yield visitor.web


def running_site(home: Path) -> Iterator[Site]:
    site = Site(home)
    try:
        site.start()
        yield site
    finally:
        site.stop()
