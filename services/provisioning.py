"""What an operator provisions once per deployment: its RabbitMQ definitions and its
PostgreSQL roles (``servicemonth deploy …``).

Isolation. Each deployment has one RabbitMQ user whose permissions reach only the
deployment's own queues and exchanges (``servicemonth.<deployment>.…``, and Celery's
control names that carry it) and the shared ``servicemonth.events`` exchange; its topic
permission lets a district bind only its own district's routing keys. Each service has one
PostgreSQL role per deployment that owns the service's database and nothing else; no other
role may connect to that database.

The definitions are built from the very queues the processes declare
(:func:`shared.bus.deployment_queues`, the Celery apps' task queues), so their arguments are
identical and RabbitMQ never answers PRECONDITION_FAILED.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
from kombu.entity import Exchange, Queue

from shared.bus import EVENTS, deployment_queues
from shared.config import CITY, SERVICES, load

#: The vhost every deployment of the city shares (the env example's broker URL).
DEFAULT_VHOST = "servicemonth"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def rabbitmq_user(deployment: str) -> str:
    return f"servicemonth-{deployment}"


def rabbitmq_password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's ``rabbit_password_hashing_sha256``: base64(salt + sha256(salt + password))."""
    salt = salt if salt is not None else secrets.token_bytes(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def permission_pattern(deployment: str) -> str:
    """What the deployment's user may configure, write and read: its own resources, Celery's
    remote-control names of the deployment (``<node>.servicemonth.<d>.control.pidbox``,
    ``reply.…``, ``<id>.reply.…``) and the shared events exchange — no other deployment's
    queue, and not the default exchange (which reaches every queue by name)."""
    own = rf"servicemonth\.{re.escape(deployment)}\."
    return rf"^({own}.*|(.+\.)?(reply\.)?{own}control\.pidbox|{re.escape(EVENTS.name)})$"


def _exchange(exchange: Exchange, vhost: str) -> dict[str, Any]:
    return {
        "name": exchange.name,
        "vhost": vhost,
        "type": exchange.type,
        "durable": bool(exchange.durable),
        "auto_delete": bool(exchange.auto_delete),
        "internal": False,
        "arguments": dict(getattr(exchange, "arguments", None) or {}),
    }


def _queue(queue: Queue, vhost: str) -> dict[str, Any]:
    return {
        "name": queue.name,
        "vhost": vhost,
        "durable": bool(queue.durable),
        "auto_delete": bool(queue.auto_delete),
        "arguments": dict(getattr(queue, "queue_arguments", None) or {}),
    }


def _binding(exchange: str, queue: str, key: str, vhost: str) -> dict[str, Any]:
    return {
        "source": exchange,
        "vhost": vhost,
        "destination": queue,
        "destination_type": "queue",
        "routing_key": key,
        "arguments": {},
    }


def _task_queues(deployment: str, district: str) -> list[Queue]:
    """Each service's Celery task queue, as its Celery app declares it."""
    from shared.workers import make_celery, task_queue

    config = load({"SERVICEMONTH_DISTRICT": district, "SERVICEMONTH_DEPLOYMENT": deployment})
    queues = []
    for service in SERVICES:
        app = make_celery(service, config)
        queues.append(app.amqp.queues[task_queue(service, config)])
    return queues


def rabbitmq_definitions(
    district: str,
    deployment: str,
    *,
    vhost: str = DEFAULT_VHOST,
    password: str | None = None,
    separate: str = "",
) -> dict[str, Any]:
    """The definitions (``rabbitmqctl import_definitions``, or ``load_definitions`` at boot)
    of one deployment: the vhost, the shared events exchange, the deployment's exchanges,
    queues and bindings, and its user. Without ``password`` the user has no password hash
    and cannot sign in until one is set (``rabbitmqctl change_password``). ``separate``: the
    city's SERVICEMONTH_SEPARATE_DISTRICTS."""
    config = load(
        {
            "SERVICEMONTH_DISTRICT": district,
            "SERVICEMONTH_DEPLOYMENT": deployment,
            "SERVICEMONTH_SEPARATE_DISTRICTS": separate,
        }
    )
    exchanges: dict[str, Exchange] = {EVENTS.name: EVENTS}
    queues: list[dict[str, Any]] = []
    bindings: list[dict[str, Any]] = []
    for queue in [*deployment_queues(config), *_task_queues(deployment, district)]:
        queues.append(_queue(queue, vhost))
        # sorted: Kombu keeps a queue's bindings in a set, the file should not churn
        links = sorted(
            ((b.exchange, b.routing_key) for b in queue.bindings or ()),
            key=lambda link: (link[0].name, link[1] or ""),
        )
        if queue.exchange is not None and queue.exchange.name:
            links.append((queue.exchange, queue.routing_key))
        for exchange, key in links:
            exchanges.setdefault(exchange.name, exchange)
            bindings.append(_binding(exchange.name, queue.name, key or "", vhost))
    user = rabbitmq_user(deployment)
    pattern = permission_pattern(deployment)
    # A district binds only its own district's routing keys; the city binds every district.
    # Publishing is not narrowed: an event's routing key carries the district it concerns.
    bind_keys = ".*" if district == CITY else rf"^{district}\."
    return {
        "vhosts": [{"name": vhost}],
        "users": [
            {
                "name": user,
                "password_hash": rabbitmq_password_hash(password) if password else "",
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": [],
            }
        ],
        "permissions": [
            {"user": user, "vhost": vhost, "configure": pattern, "write": pattern, "read": pattern}
        ],
        "topic_permissions": [
            {
                "user": user,
                "vhost": vhost,
                "exchange": EVENTS.name,
                "write": ".*",
                "read": bind_keys,
            }
        ],
        "exchanges": [_exchange(e, vhost) for e in exchanges.values()],
        "queues": queues,
        "bindings": bindings,
        "policies": [],
        "parameters": [],
        "global_parameters": [],
    }


# --- PostgreSQL ----------------------------------------------------------------------------


def database_name(base: str, service: str) -> str:
    """``<base>_<service>``, as :meth:`shared.config.Settings.database_url` names it; the
    service's role has the same name."""
    name = f"{base}_{service}"
    if not _NAME.match(name):
        raise click.BadParameter(
            f"{name!r}: lower-case letters, digits and '_', at most 63", param_hint="--base"
        )
    return name


def scram_sha_256(password: str, salt: bytes | None = None, iterations: int = 4096) -> str:
    """PostgreSQL's stored form of a password: the server (and its logs) never see it."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = base64.b64encode
    stored = b64(hashlib.sha256(client_key).digest()).decode()
    return f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}${stored}:{b64(server_key).decode()}"


def postgres_roles_sql(
    base: str, passwords: Mapping[str, str], services: tuple[str, ...] = SERVICES
) -> str:
    """psql input (run as a superuser) making, for each service, the role ``<base>_<service>``
    (LOGIN, nothing else) owning the database of the same name, which PUBLIC may not connect
    to. Idempotent: an existing role keeps its password unless one is given, an existing
    database changes owner, and tables another role made there (a release that migrated as
    a shared superuser) are handed to the service's role."""
    lines = [
        "-- servicemonth: one PostgreSQL role per service, each owning its own database.",
        "-- Generated by `servicemonth deploy postgres-roles`; run with psql as a superuser.",
        r"\set ON_ERROR_STOP on",
    ]
    for service in services:
        name = database_name(base, service)
        ident = f'"{name}"'
        lines += [
            "",
            f"-- {service}",
            f"SELECT 'CREATE ROLE {ident}' WHERE NOT EXISTS "
            f"(SELECT FROM pg_roles WHERE rolname = '{name}')\\gexec",
            f"ALTER ROLE {ident} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
            "NOREPLICATION NOBYPASSRLS;",
        ]
        if service in passwords:
            lines.append(f"ALTER ROLE {ident} PASSWORD '{scram_sha_256(passwords[service])}';")
        lines += [
            f"SELECT 'CREATE DATABASE {ident} OWNER {ident}' WHERE NOT EXISTS "
            f"(SELECT FROM pg_database WHERE datname = '{name}')\\gexec",
            f"ALTER DATABASE {ident} OWNER TO {ident};",
            f"REVOKE ALL ON DATABASE {ident} FROM PUBLIC;",
            f"\\connect {ident}",
            "REVOKE ALL ON SCHEMA public FROM PUBLIC;",
            "DO $$DECLARE o record; BEGIN",
            "  FOR o IN SELECT c.relname, c.relkind FROM pg_class c",
            "      JOIN pg_namespace n ON n.oid = c.relnamespace",
            "      WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')",
            f"        AND pg_get_userbyid(c.relowner) <> '{name}'",
            "  LOOP",
            "    EXECUTE format('ALTER %s public.%I OWNER TO %I',",
            "      CASE o.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'",
            "        WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END,",
            f"      o.relname, '{name}');",
            "  END LOOP;",
            "END$$;",
            r"\connect postgres",
        ]
    return "\n".join(lines) + "\n"


# --- the commands ----------------------------------------------------------------------------


def _secret(path: Path) -> str:
    value = path.read_text(encoding="utf-8").strip()
    if not value:
        raise click.BadParameter(f"{path} is empty")
    return value


@click.group()
def deploy() -> None:
    """What an operator provisions: RabbitMQ definitions, PostgreSQL roles."""


@deploy.command("rabbitmq-definitions")
@click.option("--district", required=True, help="The deployment's district (410300: the city).")
@click.option(
    "--deployment", default=None, help="Its SERVICEMONTH_DEPLOYMENT (default: the district)."
)
@click.option("--vhost", default=DEFAULT_VHOST, show_default=True, help="The city's shared vhost.")
@click.option(
    "--password-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The deployment user's password (else: none, set it with rabbitmqctl change_password).",
)
@click.option(
    "--separate-districts",
    default="",
    help="The city's only: its SERVICEMONTH_SEPARATE_DISTRICTS (e.g. 410303,410305).",
)
def rabbitmq_definitions_command(
    district: str,
    deployment: str | None,
    vhost: str,
    password_file: Path | None,
    separate_districts: str,
) -> None:
    """Print one deployment's RabbitMQ definitions (JSON): vhost, exchanges, quorum event
    queues with dead-lettering, task queues, and the deployment's user and permissions."""
    password = _secret(password_file) if password_file else None
    found = rabbitmq_definitions(
        district,
        deployment or district,
        vhost=vhost,
        password=password,
        separate=separate_districts,
    )
    click.echo(json.dumps(found, indent=2, ensure_ascii=False))


@deploy.command("postgres-roles")
@click.option("--base", required=True, help="The base name of SERVICEMONTH_DATABASE_URL.")
@click.option(
    "--password-file",
    "password_files",
    multiple=True,
    metavar="SERVICE=FILE",
    help="A service role's password (repeat per service; a role without one keeps its own).",
)
@click.argument("services", nargs=-1, type=click.Choice(SERVICES))
def postgres_roles_command(
    base: str, password_files: tuple[str, ...], services: tuple[str, ...]
) -> None:
    """Print the psql script making one role per service owning its own database."""
    passwords: dict[str, str] = {}
    for spec in password_files:
        service, sep, path = spec.partition("=")
        if not sep or service not in SERVICES:
            raise click.BadParameter(f"{spec!r}: SERVICE=FILE", param_hint="--password-file")
        passwords[service] = _secret(Path(path))
    click.echo(postgres_roles_sql(base, passwords, services or SERVICES), nl=False)
