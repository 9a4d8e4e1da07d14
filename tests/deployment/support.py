"""Whole deployments of the city on this machine's RabbitMQ and PostgreSQL, each as an
operator makes one: its RabbitMQ user from ``servicemonth deploy rabbitmq-definitions``
(loaded into a throw-away vhost they all share), one PostgreSQL role and database per
service from ``servicemonth deploy postgres-roles``, its own SERVICEMONTH_HOME, and
``servicemonth up`` as a process group of its own. Everything is removed at the end."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from amqp.exceptions import AccessRefused
from kombu.connection import Connection
from kombu.entity import Queue
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError, ProgrammingError

from services.demo_data import SAMPLE_DIRECTORY
from services.provisioning import database_name, rabbitmq_user
from services.registration.directory import district_of
from shared.clock import SimulatedClock
from shared.config import CITY, SERVICES
from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]
SERVICEMONTH = str(Path(sys.executable).with_name("servicemonth"))
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
#: The same personal-data key in every deployment of the city (deploy/README.md).
PII_KEY = "5e" * 32

T = TypeVar("T")


def clean_env(env: dict[str, str]) -> dict[str, str]:
    """This process's environment without any SERVICEMONTH_* setting, plus ``env``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SERVICEMONTH_")}
    return {**base, **env}


def run(
    args: list[str], env: dict[str, str], stdin: str | None = None, timeout: float = 120
) -> str:
    done = subprocess.run(
        args, cwd=ROOT, env=env, input=stdin, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{' '.join(args[:3])}: {done.stderr[-3000:]}"
    return done.stdout


def rabbitmqctl(*args: str, stdin: str | None = None, check: bool = True) -> None:
    ctl = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    subprocess.run(
        [ctl, "-q", *args], check=check, input=stdin, capture_output=True, text=True, timeout=60
    )


def psql(script: str) -> None:
    command = [shutil.which("psql") or "psql", "-q", "-v", "ON_ERROR_STOP=1"]
    command += ["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-f", "-"]
    run(command, clean_env({}), stdin=script)


def assert_cannot_touch(conn: Connection, queue: str) -> None:
    """The user of ``conn`` can neither read, purge nor consume ``queue`` (another's)."""
    with pytest.raises(AccessRefused):
        Queue(queue)(conn.channel()).get()
    with pytest.raises(AccessRefused):
        Queue(queue)(conn.channel()).purge()
    with pytest.raises(AccessRefused):
        conn.channel().basic_consume(queue, callback=lambda m: None)


def assert_kept_out(intruder_url: str, database: str, table: str) -> None:
    """The role of ``intruder_url`` (another service's) cannot connect to ``database``, nor
    read ``table`` there once a superuser grants CONNECT back to everyone."""
    intruder = create_engine(intruder_url)
    with pytest.raises(OperationalError, match="permission denied"), intruder.connect():
        pass
    intruder.dispose()
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'GRANT CONNECT ON DATABASE "{database}" TO PUBLIC'))
    try:
        intruder = create_engine(intruder_url)
        with pytest.raises(ProgrammingError, match="permission denied"), intruder.connect() as c:
            c.execute(text(f"SELECT count(*) FROM public.{table}"))
        intruder.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'REVOKE CONNECT ON DATABASE "{database}" FROM PUBLIC'))
        admin.dispose()


def wait_for(what: Callable[[], T | None], timeout: float, message: str) -> T:
    """Poll ``what()`` until it gives something truthy (events travel between processes)."""
    deadline = time.monotonic() + timeout
    while True:
        found = what()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{message}: nothing after {timeout:.0f} s")
        time.sleep(0.5)


def directory_of(district: str) -> bytes:
    """The sample directory as the city loads it (everything) or as a district loads its
    own rows: its division, streets, communities and county-level units."""
    if district == CITY:
        return SAMPLE_DIRECTORY.read_bytes()
    reader = csv.DictReader(io.StringIO(SAMPLE_DIRECTORY.read_text("utf-8")))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(reader.fieldnames or []), lineterminator="\n")
    writer.writeheader()
    for row in reader:
        if district_of(row) == district or (row["kind"] == "district" and row["code"] == district):
            writer.writerow(row)
    return out.getvalue().encode("utf-8")


@dataclass
class Deployment:
    """One deployment: its district, names, secrets, home and, once started, its processes."""

    district: str
    run: str
    vhost: str
    home: Path
    #: the city's SERVICEMONTH_SEPARATE_DISTRICTS: the districts deployed apart
    separate: tuple[str, ...] = ()
    port: int = field(default_factory=free_port)
    rabbit_password: str = field(default_factory=lambda: uuid.uuid4().hex)
    db_passwords: dict[str, str] = field(
        default_factory=lambda: {s: uuid.uuid4().hex for s in SERVICES}
    )
    #: settings besides its own (e.g. the SMS provider and SMTP server it uses)
    extra: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    admin: str = ""

    @property
    def name(self) -> str:
        """SERVICEMONTH_DEPLOYMENT: unique on the shared vhost (and this run)."""
        return f"{self.district}-{self.run}"

    @property
    def user(self) -> str:
        return rabbitmq_user(self.name)

    @property
    def base(self) -> str:
        return f"sm_e2e_{self.run}_{self.district}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def role_url(self, role_of: str, database_of: str) -> str:
        role, database = database_name(self.base, role_of), database_name(self.base, database_of)
        password = self.db_passwords[role_of]
        return f"postgresql+psycopg://{role}:{password}@127.0.0.1:5432/{database}"

    def broker_url(self) -> str:
        return f"amqp://{self.user}:{self.rabbit_password}@127.0.0.1:5672/{self.vhost}"

    @property
    def env(self) -> dict[str, str]:
        """The deployment's settings, as its env file would hold them."""
        env = {
            "SERVICEMONTH_HOME": str(self.home),
            "SERVICEMONTH_DISTRICT": self.district,
            "SERVICEMONTH_DEPLOYMENT": self.name,
            "SERVICEMONTH_BROKER_URL": self.broker_url(),
            "SERVICEMONTH_PII_KEY": PII_KEY,
            "SERVICEMONTH_REPORT_FILES_TOKEN": f"report-files-{self.run}-{self.district}-x",
            "SERVICEMONTH_CLOCK_FILE": str(self.home / "clock"),
            "SERVICEMONTH_LOG_LEVEL": "WARNING",
            "SERVICEMONTH_SEPARATE_DISTRICTS": ",".join(self.separate),
        }
        for service in SERVICES:
            env[f"SERVICEMONTH_{service.upper()}_DATABASE_URL"] = self.role_url(service, service)
        return clean_env(env | self.extra)

    # --- provisioning, as the operator does it --------------------------------------------------

    def load_rabbitmq_user(self, folder: Path) -> None:
        secret = folder / f"rabbitmq-{self.district}.password"
        secret.write_text(self.rabbit_password + "\n")
        definitions = run(
            [SERVICEMONTH, "deploy", "rabbitmq-definitions", "--district", self.district,
             "--deployment", self.name, "--vhost", self.vhost, "--password-file", str(secret),
             "--separate-districts", ",".join(self.separate)],
            clean_env({"SERVICEMONTH_HOME": str(folder)}),
        )  # fmt: skip
        # on stdin: rabbitmqctl runs as the rabbitmq user, who cannot read our tmp folder
        rabbitmqctl("import_definitions", "--format", "json", stdin=definitions)

    def create_roles(self, folder: Path) -> None:
        files = []
        for service, password in self.db_passwords.items():
            secret = folder / f"postgres-{self.district}-{service}"
            secret.write_text(password + "\n")
            files += ["--password-file", f"{service}={secret}"]
        script = run(
            [SERVICEMONTH, "deploy", "postgres-roles", "--base", self.base, *files],
            clean_env({"SERVICEMONTH_HOME": str(folder)}),
        )
        psql(script)

    def drop_roles(self) -> None:
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for service in SERVICES:
                name = database_name(self.base, service)
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                conn.execute(text(f'DROP ROLE IF EXISTS "{name}"'))
        admin.dispose()

    # --- running it -----------------------------------------------------------------------------

    def cli(self, *args: str) -> str:
        return run([SERVICEMONTH, *args], self.env).strip()

    def start(self, now: datetime, scheduler: bool = False) -> None:
        """Migrate, load its directory, make its admin token, then ``up`` in a process group
        of its own (without ``scheduler``, the caller fires the sweeps)."""
        self.home.mkdir(parents=True)
        SimulatedClock(now, self.home / "clock")
        self.cli("migrate")
        directory = self.home / "directory.csv"
        directory.write_bytes(directory_of(self.district))
        self.cli("directory", "load", str(directory))
        self.admin = self.cli("token", "create", "--role", "admin", "--scope", "city")
        with (self.home / "up.log").open("wb") as log:
            self.process = subprocess.Popen(
                [SERVICEMONTH, "up", "--port", str(self.port)]
                + ([] if scheduler else ["--no-scheduler"]),
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 180) -> None:
        def ready() -> bool:
            assert self.process is not None and self.process.poll() is None, self.log()
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(self.url + "/readyz", timeout=5).status_code == 200
            return False

        wait_for(ready, timeout, f"{self.name} ready")

    def stop(self) -> None:
        """SIGTERM to the whole process group, SIGKILL to what is left after 30 s."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)

    def log(self) -> str:
        path = self.home / "up.log"
        return path.read_text("utf-8", "replace")[-4000:] if path.exists() else ""

    def set_clock(self, when: datetime) -> None:
        SimulatedClock(when, self.home / "clock").set(when)

    # --- its public contract --------------------------------------------------------------------

    def api(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.url + "/api/v1",
            headers={"Authorization": f"Bearer {token or self.admin}"},
            timeout=60,
        )

    def token(self, role: str, scope: str) -> str:
        return self.cli("token", "create", "--role", role, "--scope", scope, "--label", "e2e")

    def get(self, path: str, token: str | None = None, **params: Any) -> Any:
        with self.api(token) as http:
            answer = http.get(path, params=params)
        assert answer.status_code == 200, f"{self.name} GET {path}: {answer.text}"
        return answer.json()

    def sms(self) -> list[dict[str, Any]]:
        """What its file SMS channel sent (``HOME/outbox/sms.jsonl``)."""
        path = self.home / "outbox" / "sms.jsonl"
        lines = path.read_text("utf-8").splitlines() if path.exists() else []
        return [json.loads(line) for line in lines]

    def emails(self) -> list[Path]:
        return sorted((self.home / "outbox" / "email").glob("*.eml"))


@contextlib.contextmanager
def provisioned(deployments: list[Deployment], folder: Path) -> Iterator[None]:
    """Each deployment's RabbitMQ user (definitions loaded into the shared throw-away vhost)
    and PostgreSQL roles and databases; all of it removed afterwards, even on failure."""
    vhost = deployments[0].vhost
    try:
        for d in deployments:
            d.load_rabbitmq_user(folder)
            d.create_roles(folder)
        yield
    finally:
        for d in deployments:
            d.stop()
        rabbitmqctl("delete_vhost", vhost, check=False)
        for d in deployments:
            rabbitmqctl("delete_user", d.user, check=False)
            d.drop_roles()
