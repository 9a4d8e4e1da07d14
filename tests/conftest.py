"""Fixtures: the two backends every integration test runs on.

``embedded``: SQLite files and the filesystem broker in a temporary folder.
``production``: PostgreSQL (throw-away databases per test) and RabbitMQ (a throw-away vhost
per test run). Both are real servers on this machine; nothing is faked.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from services import registry
from shared import bus
from shared import runtime as runtime_mod
from shared.config import SERVICES, Settings, load, settings
from shared.migrations import upgrade
from shared.runtime import Runtime, build

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
RUN = uuid.uuid4().hex[:8]


#: Set by ``make e2e-deployment``: whole deployments side by side (minutes, and most of the
#: machine), and the demo on PostgreSQL + RabbitMQ. ``make test`` skips what is marked
#: ``deployment``, so it stays within its time.
DEPLOYMENT_SWITCH = "SERVICEMONTH_E2E_DEPLOYMENT"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.environ.get(DEPLOYMENT_SWITCH) == "1":
        return
    skip = pytest.mark.skip(reason=f"make e2e-deployment runs it ({DEPLOYMENT_SWITCH}=1)")
    for item in items:
        if item.get_closest_marker("deployment") or item.get_closest_marker("long"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def rabbit_vhost() -> Iterator[str]:
    """A RabbitMQ vhost for this test run, deleted afterwards."""
    vhost = f"servicemonth-test-{RUN}"
    ctl = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    subprocess.run([ctl, "-q", "add_vhost", vhost], check=True)
    subprocess.run(
        [ctl, "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"], check=True
    )
    yield vhost
    subprocess.run([ctl, "-q", "delete_vhost", vhost], check=False)


def drop_databases(prefix: str) -> None:
    engine = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        names = conn.scalars(
            text("SELECT datname FROM pg_database WHERE datname LIKE :p"), {"p": f"{prefix}%"}
        ).all()
        for name in names:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(scope="session")
def pg_templates() -> Iterator[dict[str, str]]:
    """Migrated template databases, one per service: each test copies them (fast)."""
    prefix = f"sm_{RUN}_tpl"
    env = {
        "SERVICEMONTH_HOME": "/nonexistent",
        "SERVICEMONTH_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672/%2F",
        "SERVICEMONTH_PII_KEY": "11" * 32,
        "SERVICEMONTH_DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:5432/{prefix}",
    }
    config = load(env)
    names = {}
    for service in SERVICES:
        rt = build(service, registry.metadata(service), config)
        upgrade(service, rt.db)
        rt.db.dispose()
        names[service] = f"{prefix}_{service}"
    yield names
    drop_databases(prefix)


def copy_databases(templates: dict[str, str], tag: str) -> None:
    engine = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for service, template in templates.items():
            conn.execute(text(f'CREATE DATABASE "sm_{tag}_{service}" TEMPLATE "{template}"'))
    engine.dispose()


@dataclass
class Backend:
    """One way to run, set up for one test: its environment, settings and runtimes."""

    name: str
    env: dict[str, str]
    settings: Settings
    runtimes: dict[str, Runtime] = field(default_factory=dict)

    def rt(self, service: str) -> Runtime:
        return self.runtimes[service]

    @property
    def production(self) -> bool:
        return self.name == "production"


def backend_env(name: str, home: Path, vhost: str | None, tag: str) -> dict[str, str]:
    env = {
        "SERVICEMONTH_HOME": str(home),
        "SERVICEMONTH_DEPLOYMENT": f"t{tag}",
        "SERVICEMONTH_PII_KEY": "11" * 32,
        "SERVICEMONTH_LOG_LEVEL": "WARNING",
    }
    if name == "production":
        env["SERVICEMONTH_BROKER_URL"] = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
        env["SERVICEMONTH_DATABASE_URL"] = f"postgresql+psycopg://postgres@127.0.0.1:5432/sm_{tag}"
    return env


@contextlib.contextmanager
def open_backend(
    name: str,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    **extra: str,
) -> Iterator[Backend]:
    """``name``'s way to run under ``home`` (with the ``extra`` settings), migrated,
    installed as the process-wide configuration until the block ends."""
    vhost = request.getfixturevalue("rabbit_vhost") if name == "production" else None
    tag = f"{RUN}_{uuid.uuid4().hex[:6]}"
    if name == "production":
        copy_databases(request.getfixturevalue("pg_templates"), tag)
    env = backend_env(name, home, vhost, tag) | extra
    for key in [k for k in os.environ if k.startswith("SERVICEMONTH_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings.cache_clear()
    config = load(env)
    backend = Backend(name, env, config)
    for service in SERVICES:
        rt = build(service, registry.metadata(service), config)
        if name == "embedded":
            upgrade(service, rt.db)  # PostgreSQL copies are migrated already
        runtime_mod.override(service, rt)
        backend.runtimes[service] = rt
    try:
        yield backend
    finally:
        for service, rt in backend.runtimes.items():
            rt.db.dispose()
            runtime_mod.override(service, None)
        settings.cache_clear()
        if name == "production":
            drop_databases(f"sm_{tag}")
            forget_queues(config)


def forget_queues(config: Settings) -> None:
    """Delete a test deployment's queues and direct exchange: every test declares its own
    quorum queues, and thousands left in the run's vhost slow RabbitMQ down until
    connections time out."""
    with bus.connect(config) as conn:
        channel = conn.default_channel
        for queue in bus.deployment_queues(config):
            queue(channel).delete()
        bus.direct_exchange(config.deployment)(channel).delete()


@pytest.fixture(params=["embedded", "production"])
def backend(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Backend]:
    """Both ways to run, migrated, and installed as the process-wide configuration."""
    with open_backend(request.param, tmp_path / "var", monkeypatch, request) as backend:
        yield backend
