"""The operator's watch: ``servicemonth up`` keeps its children running, ``/readyz`` says
when a deployment cannot work, and ``servicemonth alive`` tells whether a consumer,
worker or the scheduler is alive.

The first test runs a real ``servicemonth up`` on the embedded default and kills one of
its consumers with SIGKILL; the others point one service at a PostgreSQL or a RabbitMQ
behind a loopback proxy that is taken down and brought back (the machine's servers stay
up).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from fastapi.testclient import TestClient

from services import registry
from services.app import create_app
from services.demo_data import SAMPLE_DIRECTORY
from services.processes import die_with_parent
from services.supervisor import Heartbeat, Supervisor, alive, heartbeat_path
from shared import runtime as runtime_mod
from shared.config import SERVICES, load
from tests import support
from tests.conftest import Backend, open_backend

T = TypeVar("T")


def _wait(what: Callable[[], T | None], timeout: float, every: float = 0.2) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"not within {timeout:.0f} s")


def _parent_of(pid: int) -> int | None:
    """The parent of ``pid``, or None when there is no such process (reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def _state_of(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


class Up:
    """``servicemonth up`` in a throw-away home, on the embedded default."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = support.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SERVICEMONTH_")}
        self.env |= {
            "SERVICEMONTH_HOME": str(home),
            "SERVICEMONTH_PII_KEY": "11" * 32,
            "SERVICEMONTH_LOG_LEVEL": "WARNING",
        }
        self.log = home.parent / "up.log"
        self.process: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "services.cli", *args],
            env=self.env,
            check=check,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.cli("migrate")
        self.cli("directory", "load", str(SAMPLE_DIRECTORY))
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "services.cli", "up", "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def ready(self) -> httpx.Response | None:
        assert self.process is not None and self.process.poll() is None, self.log.read_text()
        try:
            return httpx.get(f"{self.url}/readyz", timeout=10)
        except httpx.TransportError:
            return None

    def wait_ready(self, timeout: float) -> dict[str, Any]:
        def answered() -> dict[str, Any] | None:
            answer = self.ready()
            return answer.json() if answer is not None and answer.status_code == 200 else None

        return _wait(answered, timeout)

    def pid_of(self, kind: str, service: str) -> int:
        return int(heartbeat_path(self.home, kind, service).read_text())


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    running = Up(tmp_path_factory.mktemp("up") / "var")
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.mark.deployment  # make e2e-deployment (tests/conftest.py)
def test_a_killed_consumer_is_back_within_seconds_and_misses_nothing(up: Up) -> None:
    first = up.wait_ready(90)
    assert first["checks"]["process.consume.pairing"] == "ok"
    admin = up.cli("token", "create", "--role", "admin", "--scope", "city").stdout.strip()
    with httpx.Client(
        base_url=up.url, headers={"Authorization": f"Bearer {admin}"}, timeout=30
    ) as api:
        _kill_a_consumer(up, api)


def _kill_a_consumer(up: Up, api: httpx.Client) -> None:
    def pairing_members() -> int:
        counts: dict[str, int] = api.get("/api/v1/ops/pairing").json()
        return counts["members"]

    before = support.member_body(1)
    assert api.post("/api/v1/members", json=before).status_code == 201
    _wait(lambda: pairing_members() == 1, 30)
    assert up.cli("alive", "consume", "pairing").returncode == 0

    killed = up.pid_of("consume", "pairing")
    assert up.process is not None and _parent_of(killed) == up.process.pid
    os.kill(killed, signal.SIGKILL)
    down = up.ready()
    during = support.member_body(2)
    assert api.post("/api/v1/members", json=during).status_code == 201

    assert down is not None and down.status_code == 503, down and down.text
    assert down.json()["status"] == "unready"
    # down, or started again but not yet at work (its first heartbeat)
    pairing = down.json()["checks"]["process.consume.pairing"]
    assert pairing.startswith("down (killed by SIGKILL)") or pairing == "starting", pairing
    assert down.json()["checks"]["database.pairing"] == "ok"
    _wait(lambda: _parent_of(killed) is None, 10)  # reaped, not left a zombie

    again = up.wait_ready(40)
    assert again["status"] == "ready"
    restarted = up.pid_of("consume", "pairing")
    assert restarted != killed and _parent_of(restarted) == up.process.pid
    assert _state_of(restarted) != "Z"
    assert up.cli("alive", "consume", "pairing").returncode == 0

    # the member registered while pairing's consumer was down reaches pairing after
    _wait(lambda: pairing_members() == 2, 30)

    log = up.log.read_text()
    assert f"consume pairing (pid {killed}) stopped" in log
    assert "killed by SIGKILL" in log
    assert f"restarted consume pairing (pid {restarted}" in log
    for person in (before, during):  # no personal data in what up logs
        assert person["name"] not in log and person["phone"] not in log


def test_the_pages_alone_are_ready_while_the_api_answers(up: Up) -> None:
    up.wait_ready(90)
    with _serve_web(up, up.url) as readyz:
        ready = _wait(readyz, 30)
        assert (ready.status_code, ready.json()["status"]) == (200, "ready")
    with _serve_web(up, f"http://127.0.0.1:{support.free_port()}") as readyz:  # no API there
        unready = _wait(readyz, 30)
        assert unready.status_code == 503
        assert unready.json()["checks"]["api"].startswith("error")


@contextlib.contextmanager
def _serve_web(up: Up, api_url: str) -> Iterator[Callable[[], httpx.Response | None]]:
    """``servicemonth serve web`` calling the API at ``api_url``; yields its /readyz."""
    port = support.free_port()
    web = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "serve", "web", "--port", str(port)],
        env=up.env | {"SERVICEMONTH_API_URL": api_url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )

    def readyz() -> httpx.Response | None:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
        except httpx.TransportError:
            return None

    try:
        yield readyz
    finally:
        web.terminate()
        web.wait(10)


def test_alive_tells_a_beating_process_from_a_dead_or_silent_one(tmp_path: Path) -> None:
    path = heartbeat_path(tmp_path, "consume", "pairing")
    assert not alive(path)  # never started
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        path.parent.mkdir(parents=True)
        path.write_text(f"{sleeper.pid}\n")
        assert alive(path)
        os.utime(path, (time.time() - 120, time.time() - 120))
        assert not alive(path, max_age=30)  # it stopped beating
        Heartbeat(path).beat()  # this process beats
        assert alive(path)
        path.write_text(f"{sleeper.pid}\n")
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not alive(path)  # its process is gone


# --- /readyz when PostgreSQL, RabbitMQ or a migration is missing ---------------------------


class Proxy(support.TcpProxy):
    """A loopback proxy whose port refuses connections while it is stopped."""

    def stop(self) -> None:
        if self._listener is not None:
            # close() alone leaves the socket listening while the accepting thread holds it
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
        super().stop()


def _readyz() -> tuple[int, dict[str, Any]]:
    with TestClient(create_app(SERVICES)) as http:
        answer = http.get("/readyz")
    return answer.status_code, answer.json()


def _point(backend: Backend, services: tuple[str, ...], **settings: str) -> None:
    """Run ``services`` of ``backend`` on its settings changed by ``settings``."""
    config = load(backend.env | settings)
    for service in services:
        rt = runtime_mod.build(service, registry.metadata(service), config)
        runtime_mod.override(service, rt)
        backend.runtimes[service].db.dispose()
        backend.runtimes[service] = rt


@pytest.fixture
def production(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[Backend]:
    with open_backend("production", tmp_path / "var", monkeypatch, request) as backend:
        yield backend


def test_readyz_is_unready_while_a_services_postgresql_does_not_answer(
    production: Backend,
) -> None:
    assert _readyz()[0] == 200
    proxy = Proxy(("127.0.0.1", 5432))
    proxy.start()
    url = production.env["SERVICEMONTH_DATABASE_URL"].replace(":5432/", f":{proxy.port}/")
    _point(production, ("pairing",), SERVICEMONTH_PAIRING_DATABASE_URL=f"{url}_pairing")
    try:
        status, body = _readyz()
        assert (status, body["status"]) == (200, "ready"), body
        proxy.stop()
        status, body = _readyz()
        assert (status, body["status"]) == (503, "unready")
        assert body["checks"]["database.pairing"].startswith("error")
        assert body["checks"]["database.registration"] == "ok"
        assert body["checks"]["broker"] == "ok"
        proxy.start()
        status, body = _readyz()
        assert (status, body["status"]) == (200, "ready"), body
    finally:
        proxy.stop()


def test_a_route_whose_database_does_not_answer_says_503_try_again_not_500(
    production: Backend,
) -> None:
    """Found by the chaos month: while PostgreSQL restarted, every call answered 500 and
    logged a traceback with the statement."""
    token = support.issue_token(production, "admin", "city")
    proxy = Proxy(("127.0.0.1", 5432))
    proxy.start()
    url = production.env["SERVICEMONTH_DATABASE_URL"].replace(":5432/", f":{proxy.port}/")
    _point(production, ("pairing",), SERVICEMONTH_PAIRING_DATABASE_URL=f"{url}_pairing")
    try:
        with TestClient(create_app(SERVICES), raise_server_exceptions=False) as http:
            http.headers["Authorization"] = f"Bearer {token}"
            assert http.get("/api/v1/wishes").status_code == 200
            proxy.stop()
            down = http.get("/api/v1/wishes")
            assert down.status_code == 503, down.text
            assert down.headers["Retry-After"] == "5"
            assert down.headers["content-type"] == "application/problem+json"
            assert http.get("/api/v1/ops/registration").status_code == 200  # its own is up
            proxy.start()
            assert http.get("/api/v1/wishes").status_code == 200
    finally:
        proxy.stop()


def test_readyz_is_unready_while_rabbitmq_does_not_answer(production: Backend) -> None:
    proxy = Proxy(("127.0.0.1", 5672))
    proxy.start()
    url = production.env["SERVICEMONTH_BROKER_URL"].replace(":5672/", f":{proxy.port}/")
    _point(production, SERVICES, SERVICEMONTH_BROKER_URL=url)
    try:
        status, body = _readyz()
        assert (status, body["checks"]) == (200, {**body["checks"], "broker": "ok"}), body
        proxy.stop()
        status, body = _readyz()
        assert (status, body["status"]) == (503, "unready")
        assert body["checks"]["broker"].startswith("error")
        assert all(body["checks"][f"database.{s}"] == "ok" for s in SERVICES)
        proxy.start()
        assert _readyz()[0] == 200
    finally:
        proxy.stop()


def test_readyz_is_unready_while_a_database_is_not_migrated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    with open_backend("embedded", tmp_path / "var", monkeypatch, request) as backend:
        assert _readyz()[0] == 200
        empty = f"sqlite:///{tmp_path / 'empty.sqlite'}"
        _point(backend, ("notify",), SERVICEMONTH_NOTIFY_DATABASE_URL=empty)
        status, body = _readyz()
        assert status == 503
        assert body["checks"]["database.notify"].startswith("migrations not at head")
        assert body["checks"]["broker"] == "ok"


# --- the supervisor's backoff ------------------------------------------------------------


def test_a_child_that_keeps_dying_is_started_ever_more_slowly_and_not_after_stop(
    tmp_path: Path,
) -> None:
    started: list[float] = []

    def spawn(argv: Sequence[str]) -> subprocess.Popen[bytes]:
        started.append(time.monotonic())
        return subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])

    supervisor = Supervisor(
        tmp_path,
        [("consume", "pairing")],
        first_delay=0.2,
        max_delay=0.8,
        check_every=0.02,
        spawn=spawn,
    )
    supervisor.start()
    try:
        _wait(lambda: len(started) >= 6, 30, every=0.05)
        # /readyz names the way it ended
        _wait(lambda: supervisor.status()["consume pairing"].startswith("down (exit code 3)"), 5)
    finally:
        supervisor.stop()
    spawned = len(started)
    gaps = [b - a for a, b in itertools.pairwise(started)]
    # each wait at least the last one doubled (1, 2, 4 … × first_delay), up to the cap
    assert all(gap >= min(0.2 * 2**i, 0.8) for i, gap in enumerate(gaps[:5])), gaps
    time.sleep(1.0)
    assert len(started) == spawned  # stopped: nothing is started again
