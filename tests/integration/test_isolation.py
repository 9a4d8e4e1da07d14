"""Deployments and services are fenced off from each other on the real servers.

RabbitMQ: the definitions of two districts (``servicemonth deploy rabbitmq-definitions``)
load into a throw-away vhost; each district's user works its own queues and is refused
another's. PostgreSQL: the roles of two services (``servicemonth deploy postgres-roles``)
own their throw-away databases; one service's role cannot reach the other's tables, and
``servicemonth migrate`` runs as the owning role.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import amqp
import pytest
from amqp.exceptions import AccessRefused
from kombu.connection import Connection
from kombu.entity import Queue
from sqlalchemy import create_engine, text

from services.provisioning import database_name, rabbitmq_user
from shared.bus import EVENTS, dead_letter_queue, declare, event_queue, event_queue_name
from shared.config import Settings, load
from shared.consumer import read_dead_letters
from shared.workers import make_celery, send_task, task_queue
from tests.deployment.support import PG_ADMIN, assert_cannot_touch, assert_kept_out, rabbitmqctl

# whole processes on the real servers: make e2e-deployment (tests/conftest.py)
pytestmark = [pytest.mark.production, pytest.mark.deployment]

RUN = uuid.uuid4().hex[:8]
ROOT = Path(__file__).resolve().parents[2]
SERVICEMONTH = [str(Path(sys.executable).with_name("servicemonth"))]


def servicemonth(*args: str, env: dict[str, str]) -> str:
    """Run the ``servicemonth`` command with ``env`` as its only SERVICEMONTH_* settings."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SERVICEMONTH_")}
    done = subprocess.run(
        [*SERVICEMONTH, *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


# --- RabbitMQ ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class District:
    district: str
    deployment: str
    password: str
    vhost: str

    def settings(self, home: Path) -> Settings:
        user = rabbitmq_user(self.deployment)
        return load(
            {
                "SERVICEMONTH_HOME": str(home),
                "SERVICEMONTH_DISTRICT": self.district,
                "SERVICEMONTH_DEPLOYMENT": self.deployment,
                "SERVICEMONTH_BROKER_URL": (
                    f"amqp://{user}:{self.password}@127.0.0.1:5672/{self.vhost}"
                ),
                "SERVICEMONTH_PII_KEY": "ab" * 32,
            }
        )


@pytest.fixture(scope="module")
def districts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[District, District]]:
    """Two districts' definitions loaded into a throw-away vhost, as an operator would."""
    folder = tmp_path_factory.mktemp("definitions")
    vhost = f"servicemonth-isolation-{RUN}"
    pair = (
        District("410303", f"iso-a-{RUN}", uuid.uuid4().hex, vhost),
        District("410304", f"iso-b-{RUN}", uuid.uuid4().hex, vhost),
    )
    try:
        for d in pair:
            secret = folder / f"{d.deployment}.password"
            secret.write_text(d.password + "\n")
            found = servicemonth(
                "deploy", "rabbitmq-definitions", "--district", d.district,
                "--deployment", d.deployment, "--vhost", vhost, "--password-file", str(secret),
                env={"SERVICEMONTH_HOME": str(folder)},
            )  # fmt: skip
            # on stdin: rabbitmqctl runs as the rabbitmq user, who cannot read our tmp folder
            rabbitmqctl("import_definitions", "--format", "json", stdin=found)
        yield pair
    finally:
        rabbitmqctl("delete_vhost", vhost, check=False)
        for d in pair:
            rabbitmqctl("delete_user", rabbitmq_user(d.deployment), check=False)


def connection(settings: Settings) -> Connection:
    return Connection(settings.broker_url(), heartbeat=0, connect_timeout=5)


def test_the_definitions_declare_what_the_processes_declare(
    districts: tuple[District, District], tmp_path: Path
) -> None:
    a, _ = districts
    settings = a.settings(tmp_path)
    with connection(settings) as conn:
        declare(conn, settings)  # same arguments, or PRECONDITION_FAILED
        celery = make_celery("notify", settings)
        with celery.connection_for_write() as celery_conn:
            queue = celery.amqp.queues[task_queue("notify", settings)]
            queue(celery_conn.default_channel).declare()
            assert queue(celery_conn.default_channel).queue_declare(passive=True)


def test_a_district_works_its_own_queue(
    districts: tuple[District, District], tmp_path: Path
) -> None:
    a, _ = districts
    settings = a.settings(tmp_path)
    with connection(settings) as conn:
        declare(conn, settings)
        conn.Producer().publish(
            {"hello": "pairing"},
            exchange=EVENTS,
            routing_key=f"{a.district}.member.registered",
            serializer="json",
        )
        got: list[object] = []
        # a queue with a single active consumer takes no basic.get: consume, as the process does
        with conn.Consumer(
            [event_queue("pairing", settings)], callbacks=[lambda body, m: got.append(body)]
        ) as consumer:
            deadline = time.monotonic() + 5
            while not got and time.monotonic() < deadline:
                with contextlib.suppress(TimeoutError):
                    conn.drain_events(timeout=0.2)
            consumer.recover(requeue=True)
        assert got == [{"hello": "pairing"}]
        event_queue("pairing", settings)(conn.default_channel).purge()
        # its dead letters go through its own exchange, and it reads them back
        dead = dead_letter_queue("pairing", settings)
        conn.Producer().publish(
            {"dead": "letter"}, exchange=dead.exchange, routing_key=dead.routing_key
        )
        deadline = time.monotonic() + 5
        letters: list[dict[str, object]] = []
        while not letters and time.monotonic() < deadline:
            letters = read_dead_letters(conn, "pairing", settings)
        assert [letter["body"] for letter in letters] == ['{"dead": "letter"}']


def test_a_district_cannot_consume_or_purge_another_districts_queue(
    districts: tuple[District, District], tmp_path: Path
) -> None:
    a, b = districts
    theirs = event_queue_name("pairing", b.deployment)
    with connection(a.settings(tmp_path)) as conn:
        assert_cannot_touch(conn, theirs)


def test_a_district_cannot_bind_another_districts_events_to_its_queue(
    districts: tuple[District, District], tmp_path: Path
) -> None:
    a, b = districts
    mine = event_queue_name("pairing", a.deployment)
    with connection(a.settings(tmp_path)) as conn:
        with pytest.raises(AccessRefused):
            conn.channel().queue_bind(mine, EVENTS.name, f"{b.district}.member.*")
        # nor put a message on it through its deployment's exchange or the default one
        for exchange in (f"servicemonth.{b.deployment}.direct", ""):
            channel = conn.channel()
            with pytest.raises(AccessRefused):
                channel.basic_publish(amqp.Message(b"x"), exchange, theirs(b))
                channel.basic_qos(0, 1, False)  # the refusal closes the channel: see it


def theirs(b: District) -> str:
    return event_queue_name("pairing", b.deployment)


def test_a_districts_celery_control_stays_within_its_permissions(
    districts: tuple[District, District], tmp_path: Path
) -> None:
    a, _ = districts
    celery = make_celery("pairing", a.settings(tmp_path))
    assert celery.control.ping(timeout=0.3) == []  # reply exchange and queue, the pidbox
    with celery.connection_for_write() as conn:
        node = celery.control.mailbox(conn).Node(
            f"pairing.{a.deployment}@isolation-test", channel=conn.channel()
        )
        node.listen()  # the worker's own control queue


def test_a_district_enqueues_its_services_tasks_under_its_user(
    districts: tuple[District, District], tmp_path: Path
) -> None:
    """Through the task queue's own exchange: Celery would otherwise send a direct queue's
    task through the default exchange, which the district's user may not write to."""
    a, _ = districts
    settings = a.settings(tmp_path)
    send_task("notify", settings, "notify.isolation_probe", "x")  # confirmed, or it raises
    with connection(settings) as conn:
        queue = Queue(task_queue("notify", settings))(conn.channel())
        deadline = time.monotonic() + 5
        message = queue.get(no_ack=True)
        while message is None and time.monotonic() < deadline:
            time.sleep(0.1)
            message = queue.get(no_ack=True)
    assert message is not None and message.headers["task"] == "notify.isolation_probe"


def test_a_districts_celery_worker_runs_under_its_user(
    districts: tuple[District, District], tmp_path: Path
) -> None:
    """Mingle, gossip, heartbeats and remote control: every name it declares is its own."""
    a, _ = districts
    settings = a.settings(tmp_path)
    env = dict(settings.env)
    base = {k: v for k, v in os.environ.items() if not k.startswith("SERVICEMONTH_")}
    log = tmp_path / "worker.log"
    with log.open("w") as out:
        worker = subprocess.Popen(
            [*SERVICEMONTH, "worker", "pairing", "--concurrency=1"],
            cwd=ROOT,
            env={**base, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        celery = make_celery("pairing", settings)
        answered: list[dict[str, object]] = []
        deadline = time.monotonic() + 60
        while not answered and worker.poll() is None and time.monotonic() < deadline:
            answered = celery.control.ping(timeout=1.0)
        assert answered, log.read_text()
        assert all(f"pairing.{a.deployment}@" in name for reply in answered for name in reply)
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    assert "ACCESS_REFUSED" not in log.read_text()


# --- PostgreSQL ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def roles(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Roles and databases of registration and pairing under a throw-away base name."""
    base = f"sm_iso_{RUN}"
    folder = tmp_path_factory.mktemp("roles")
    files = []
    for service in ("registration", "pairing"):
        (folder / service).write_text(uuid.uuid4().hex)
        files += ["--password-file", f"{service}={folder / service}"]
    script = servicemonth(
        "deploy", "postgres-roles", "--base", base, *files, "registration", "pairing",
        env={"SERVICEMONTH_HOME": str(folder)},
    )  # fmt: skip
    psql = [
        shutil.which("psql") or "psql",
        "-q",
        "-h",
        "127.0.0.1",
        "-U",
        "postgres",
        "-d",
        "postgres",
    ]
    try:
        for _ in range(2):  # idempotent: a second run changes nothing and fails nowhere
            done = subprocess.run([*psql, "-f", "-"], input=script, capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
        yield base
    finally:
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for service in ("registration", "pairing"):
                name = database_name(base, service)
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                conn.execute(text(f'DROP ROLE IF EXISTS "{name}"'))
        admin.dispose()


def role_url(base: str, role_of: str, database_of: str) -> str:
    role, database = database_name(base, role_of), database_name(base, database_of)
    return f"postgresql+psycopg://{role}@127.0.0.1:5432/{database}"


def migrate_as_its_role(base: str, service: str, home: Path) -> str:
    env = {
        "SERVICEMONTH_HOME": str(home),
        f"SERVICEMONTH_{service.upper()}_DATABASE_URL": role_url(base, service, service),
    }
    return servicemonth("migrate", service, env=env)


def test_migrate_runs_as_the_services_own_role_and_its_role_owns_the_tables(
    roles: str, tmp_path: Path
) -> None:
    assert "pairing: database at head" in migrate_as_its_role(roles, "pairing", tmp_path)

    engine = create_engine(role_url(roles, "pairing", "pairing"))
    with engine.connect() as conn:
        owners = set(
            conn.scalars(text("SELECT tableowner FROM pg_tables WHERE schemaname = 'public'"))
        )
        assert owners == {database_name(roles, "pairing")}
        assert conn.scalar(text("SELECT count(*) FROM alembic_version")) == 1
    engine.dispose()


def test_a_services_role_cannot_reach_another_services_tables(roles: str, tmp_path: Path) -> None:
    migrate_as_its_role(roles, "registration", tmp_path)

    registration = database_name(roles, "registration")
    assert_kept_out(role_url(roles, "pairing", "registration"), registration, "alembic_version")
