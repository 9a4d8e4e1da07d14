"""The operator's files in deploy/ agree with the real command line and settings.

No Docker, no systemd: commands are parsed with the real ``servicemonth`` CLI (Click's
``make_context``, which checks subcommands, SERVICE choices and options without running
anything), and the settings are read from ``shared/config.py``'s own source.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from services.cli import cli
from services.provisioning import permission_pattern, postgres_roles_sql, rabbitmq_definitions
from shared.config import PREFIX, SECTIONS, SERVICES, ConfigError, all_keys, load

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / "servicemonth.env.example"
SYSTEMD = DEPLOY / "systemd"
PROCESS_KINDS = ("consume", "worker", "serve")

#: Settings the scan of the config source must at least find (guards the regexes).
KNOWN_SETTINGS = {
    "HOME",
    "DISTRICT",
    "DEPLOYMENT",
    "CAMPAIGN",
    "CAMPAIGN_START",
    "CAMPAIGN_END",
    "HTTP_HOST",
    "HTTP_PORT",
    "CLOCK_FILE",
    "LOG_LEVEL",
    "BROKER_URL",
    "DATABASE_URL",
    "PII_KEY",
}

_KEY = r"([A-Z][A-Z0-9_]*[A-Z0-9])"


def parse_cli(argv: list[str]) -> tuple[click.Command, click.Context]:
    """Parse ``servicemonth <argv>`` with the real CLI; raise on anything it would reject."""
    command: click.Command = cli
    args = list(argv)
    path = ["servicemonth"]
    while isinstance(command, click.Group):
        assert args, f"{' '.join(path)}: a subcommand is missing"
        name = args.pop(0)
        sub = command.commands.get(name)
        assert sub is not None, (
            f"{' '.join(path)} has no command {name!r} (it has: {', '.join(command.commands)})"
        )
        path.append(name)
        command = sub
    ctx = command.make_context(" ".join(path), args)
    for key in ("service", "services"):
        value = ctx.params.get(key)
        for name in (value,) if isinstance(value, str) else value or ():
            assert name in (*SERVICES, "web"), f"{argv}: {name!r} is not a service"
    return command, ctx


# --- compose ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


def app_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run our image (the others are PostgreSQL and RabbitMQ)."""
    return {
        name: svc
        for name, svc in compose["services"].items()
        if "SERVICEMONTH_IMAGE" in str(svc.get("image", ""))
    }


def argv_of(svc: dict[str, Any]) -> list[str]:
    command = svc["command"]
    return shlex.split(command) if isinstance(command, str) else [str(a) for a in command]


def test_compose_commands_are_real_cli_commands(compose: dict[str, Any]) -> None:
    apps = app_services(compose)
    assert len(apps) == 3 + 3 * len(SERVICES)  # + migrate, the scheduler and the web app
    for name, svc in apps.items():
        assert "command" in svc, f"{name}: no command (the image's default is --help)"
        try:
            parse_cli(argv_of(svc))
        except click.ClickException as exc:
            pytest.fail(f"compose service {name}: {exc.format_message()}")


def test_compose_runs_each_process_of_each_service(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for service in SERVICES:
        for suffix, kind in (("consume", "consume"), ("worker", "worker"), ("api", "serve")):
            svc = services.get(f"{service}-{suffix}")
            assert svc is not None, f"compose has no {service}-{suffix}"
            assert argv_of(svc)[:2] == [kind, service]
            assert svc.get("restart") in ("unless-stopped", "always", "on-failure")
        consume = services[f"{service}-consume"]
        assert consume.get("deploy", {}).get("replicas", 1) == 1, "one consume per service"
    assert argv_of(services["migrate"]) == ["migrate"]
    assert services["migrate"].get("restart") == "no"
    assert argv_of(services["scheduler"]) == ["scheduler"]
    assert services["scheduler"].get("deploy", {}).get("replicas", 1) == 1, "one scheduler"


def test_compose_dependencies_wait_for_the_right_state(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, svc in app_services(compose).items():
        depends = svc.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        assert depends["postgres"]["condition"] == "service_healthy"
        if name != "migrate":
            assert depends["migrate"]["condition"] == "service_completed_successfully"
            assert depends["rabbitmq"]["condition"] == "service_healthy"
        for target, spec in depends.items():
            assert target in services, f"{name} depends on unknown {target}"
            if spec["condition"] == "service_healthy":
                assert services[target].get("healthcheck", {}).get("test"), f"{target}: no check"
    assert services["postgres"]["image"].startswith("postgres:15")
    assert services["rabbitmq"]["image"].startswith("rabbitmq:3-management")
    for backend in ("postgres", "rabbitmq"):
        assert services[backend]["volumes"], f"{backend} keeps its data in a volume"


def test_compose_env_file_is_the_example(compose: dict[str, Any]) -> None:
    for name, svc in app_services(compose).items():
        env_file = svc.get("env_file")
        assert env_file == "servicemonth.env", f"{name}: env_file {env_file!r}"
    assert (DEPLOY / "servicemonth.env.example").is_file()


# --- isolation: each container's secrets, the users' files ---------------------------------

SECRETS_EXAMPLE = DEPLOY / "compose.secrets.example"
DEFINITION_EXAMPLES = sorted((DEPLOY / "rabbitmq").glob("definitions-*.example.json"))


def secret_keys() -> set[str]:
    """Every key that carries a secret: typed as one, a URL holding a password, a key id."""
    found = set()
    for key in all_keys():
        field = next(f for s in SECTIONS.values() for k, f in s.key_fields() if k == key)
        if "SecretStr" in str(field.annotation) or key.endswith(
            ("DATABASE_URL", "BROKER_URL", "ACCESS_KEY_ID", "SECRET_ID")
        ):
            found.add(key)
    return found


def secrets_given(svc: dict[str, Any]) -> set[str]:
    """The secret keys a container receives a value for (the others it gets blank)."""
    env = svc.get("environment") or {}
    assert isinstance(env, dict), "environment as a mapping"
    return {key for key, value in env.items() if key in secret_keys() and str(value)}


def test_compose_hands_each_container_only_the_secrets_it_uses(compose: dict[str, Any]) -> None:
    def db(*services: str) -> set[str]:
        return {f"{PREFIX}{s.upper()}_DATABASE_URL" for s in services}

    bus = {f"{PREFIX}{k}" for k in ("BROKER_URL", "PII_KEY", "METRICS_TOKEN", "PII_LOOKUP_KEY")}
    bus &= set(all_keys())
    channels = {
        f"{PREFIX}{k}"
        for k in (
            "NOTIFY_WEBHOOK_TOKEN",
            "ALIYUN_ACCESS_KEY_ID",
            "ALIYUN_ACCESS_KEY_SECRET",
            "TENCENT_SECRET_ID",
            "TENCENT_SECRET_KEY",
            "SMTP_PASSWORD",
        )
    }
    files = {f"{PREFIX}REPORT_FILES_TOKEN"}  # notify fetches report files from reporting's API
    expected = {"web": set(), "migrate": db(*SERVICES), "scheduler": bus | db(*SERVICES)}
    for service in SERVICES:
        for suffix in ("consume", "worker", "api"):
            own = bus | db(service) | (channels | files if service == "notify" else set())
            expected[f"{service}-{suffix}"] = own
    expected["reporting-api"] |= files
    apps = app_services(compose)
    assert set(apps) == set(expected)
    for name, svc in apps.items():
        env = svc["environment"]
        assert not secret_keys() - set(env), f"{name}: servicemonth.env could pass these"
        assert secrets_given(svc) == expected[name], name
    for backend in ("postgres", "rabbitmq"):
        svc = compose["services"][backend]
        assert "env_file" not in svc, f"{backend} reads no env file of ours"
        env = svc.get("environment") or {}
        assert not [k for k in env if k.startswith(PREFIX) or k.startswith("RABBITMQ_DEFAULT")]


def test_compose_secrets_come_from_the_secrets_example(compose: dict[str, Any]) -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    interpolated = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)(?::?[-?][^}]*)?\}", text))
    layout = {"SERVICEMONTH_IMAGE", "WORKER_CONCURRENCY", "POSTGRES_USER"}
    layout |= {k for k in interpolated if k.endswith("_PORT")}
    example = {
        m.group(1)
        for line in SECRETS_EXAMPLE.read_text(encoding="utf-8").splitlines()
        if (m := re.match(r"^([A-Z][A-Z0-9_]*)=", line))
    }
    assert example == interpolated - layout
    assert not example - {*secret_keys(), "POSTGRES_PASSWORD"}, "only secrets in .env"


def test_compose_loads_the_definitions_and_the_roles(compose: dict[str, Any]) -> None:
    rabbitmq, postgres = compose["services"]["rabbitmq"], compose["services"]["postgres"]
    (conf,) = rabbitmq["configs"]
    assert conf["target"].startswith("/etc/rabbitmq/conf.d/")
    content = compose["configs"][conf["source"]]["content"]
    (path,) = re.findall(r"^load_definitions = (\S+)$", content, flags=re.M)
    assert f"./rabbitmq-definitions:{path}:ro" in rabbitmq["volumes"]
    assert any(
        v.startswith("./postgres-roles.sql:/docker-entrypoint-initdb.d/")
        for v in postgres["volumes"]
    )


@pytest.mark.parametrize("path", DEFINITION_EXAMPLES, ids=lambda p: p.name)
def test_the_example_definitions_are_what_the_generator_prints(path: Path) -> None:
    district = re.findall(r"definitions-(\d{6})\.example", path.name)[0]
    found = json.loads(path.read_text(encoding="utf-8"))
    assert found == rabbitmq_definitions(district, district)  # in step with shared/bus.py
    assert found["users"][0]["password_hash"] == ""  # signs in once an operator sets one


def test_examples_exist_for_a_district_and_the_city() -> None:
    assert {p.name for p in DEFINITION_EXAMPLES} >= {
        "definitions-410300.example.json",
        "definitions-410303.example.json",
    }


def test_a_deployments_user_reaches_only_its_own_names() -> None:
    pattern = re.compile(permission_pattern("410303"))
    for mine in (
        "servicemonth.410303.pairing.events",
        "servicemonth.410303.notify.tasks",
        "servicemonth.410303.direct",
        "servicemonth.events",
        "pairing.410303@host.example.servicemonth.410303.control.pidbox",
        "reply.servicemonth.410303.control.pidbox",
        "2f1e.reply.servicemonth.410303.control.pidbox",
        "servicemonth.410303.celeryev.2f1e",
    ):
        assert pattern.match(mine), mine
    for theirs in (
        "servicemonth.4103031.pairing.events",
        "servicemonth.410304.pairing.events",
        "servicemonth.410304.direct",
        "servicemonth.dead",
        "amq.default",
        "",
        "celery.pidbox",
        "celeryev",
    ):
        assert not pattern.match(theirs), theirs


def test_the_roles_script_gives_each_service_its_own_database() -> None:
    sql = postgres_roles_sql("servicemonth_410303", {"pairing": "s3cret"})
    for service in SERVICES:
        name = f'"servicemonth_410303_{service}"'
        assert f"CREATE DATABASE {name} OWNER {name}" in sql
        assert f"REVOKE ALL ON DATABASE {name} FROM PUBLIC;" in sql
    assert "s3cret" not in sql and sql.count("PASSWORD 'SCRAM-SHA-256$4096:") == 1


# --- settings -----------------------------------------------------------------------------


def settings_read_by_config() -> tuple[set[str], set[str]]:
    """(plain keys, per-service keys) that shared/config.py and Settings.get callers read."""
    source = (ROOT / "shared" / "config.py").read_text(encoding="utf-8")
    plain = set(re.findall(r'PREFIX \+ "' + _KEY + '"', source))
    plain |= set(re.findall(r"\{PREFIX\}" + _KEY, source))
    plain |= set(re.findall(r'_date\(\s*env,\s*"' + _KEY + '"', source))
    plain |= set(re.findall(r'\bself\.get\(\s*"' + _KEY + '"', source))
    per_service = set(re.findall(r"\{PREFIX\}\{service\.upper\(\)\}_" + _KEY, source))
    getter = re.compile(r'\bsettings(?:\(\))?\.get\(\s*"' + _KEY + '"')
    for path in [*(ROOT / "shared").rglob("*.py"), *(ROOT / "services").rglob("*.py")]:
        plain |= set(getter.findall(path.read_text(encoding="utf-8")))
    return plain, per_service


def example_assignments() -> Iterator[tuple[bool, str, str]]:
    """(active, key, value) for each ``KEY=value`` line, commented-out ones inactive."""
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^(#?)\s*([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match:
            yield not match.group(1), match.group(2), match.group(3)


def test_every_setting_is_in_the_env_example() -> None:
    plain, per_service = settings_read_by_config()
    assert plain >= KNOWN_SETTINGS, f"scan missed {KNOWN_SETTINGS - plain}"
    expected = {PREFIX + k for k in plain}
    expected |= {f"{PREFIX}{s.upper()}_{k}" for s in SERVICES for k in per_service}
    documented = {key for _, key, _ in example_assignments()}
    assert not expected - documented, f"missing from the env example: {expected - documented}"


def test_env_example_names_only_real_settings() -> None:
    plain, _ = settings_read_by_config()
    service_prefix = re.compile(rf"^(?:{'|'.join(s.upper() for s in SERVICES)})_")
    active = [key for on, key, _ in example_assignments() if on]
    assert len(active) == len(set(active)), "a key is set twice"
    for _, key, _ in example_assignments():
        if key.startswith(PREFIX):
            bare = key[len(PREFIX) :]
            assert bare in plain or service_prefix.sub("", bare) in plain, f"unknown {key}"


def test_env_example_values_are_valid_and_the_key_placeholder_is_not() -> None:
    env = {key: value for on, key, value in example_assignments() if on}
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    assert 'python -c "import secrets;print(secrets.token_hex(32))"' in text
    assert "never commit" in text.lower()
    with pytest.raises(ConfigError, match="PII_KEY"):
        load(env)  # the placeholder fails loudly instead of minting a local key
    config = load({**env, PREFIX + "PII_KEY": "ab" * 32})  # every other value passes
    assert config.district == env[PREFIX + "DISTRICT"]
    assert config.broker_url().startswith("amqp://")
    assert all(config.database_url(s).startswith("postgresql+psycopg://") for s in SERVICES)
    assert len(config.pii_key()) == 32


# --- systemd ------------------------------------------------------------------------------


def read_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
        else:
            key, _, value = line.partition("=")
            current.append((key.strip(), value.strip()))
    return sections


def values(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> list[str]:
    return [v for k, v in unit.get(section, []) if k == key]


def unit_argv(exec_start: str, instance: str) -> list[str]:
    exe, *args = shlex.split(exec_start.replace("%i", instance))
    assert exe.endswith("/servicemonth"), exec_start
    return [a for a in args if not a.startswith("$")]  # $WORKER_ARGS: operator's extras


def test_systemd_units_run_real_commands() -> None:
    units = {p.name: read_unit(p) for p in SYSTEMD.glob("*.service")}
    expected = {f"servicemonth-{kind}@.service" for kind in PROCESS_KINDS}
    assert expected | {"servicemonth-migrate.service", "servicemonth-scheduler.service"} <= set(
        units
    )
    for name, unit in units.items():
        (exec_start,) = values(unit, "Service", "ExecStart")
        for instance in SERVICES if "@" in name else ("",):
            try:
                parse_cli(unit_argv(exec_start, instance))
            except click.ClickException as exc:
                pytest.fail(f"{name} ({instance}): {exc.format_message()}")
        assert "/etc/servicemonth/servicemonth.env" in values(unit, "Service", "EnvironmentFile")


def test_systemd_templates_are_supervised_after_migrate() -> None:
    migrate = read_unit(SYSTEMD / "servicemonth-migrate.service")
    assert values(migrate, "Service", "Type") == ["oneshot"]
    assert unit_argv(values(migrate, "Service", "ExecStart")[0], "") == ["migrate"]
    for kind in PROCESS_KINDS:
        unit = read_unit(SYSTEMD / f"servicemonth-{kind}@.service")
        (exec_start,) = values(unit, "Service", "ExecStart")
        assert unit_argv(exec_start, "notify")[:2] == [kind, "notify"]
        assert "servicemonth-migrate.service" in " ".join(values(unit, "Unit", "Requires"))
        assert "servicemonth-migrate.service" in " ".join(values(unit, "Unit", "After"))
        assert values(unit, "Service", "Restart") == ["on-failure"]
        assert values(unit, "Service", "KillSignal") == ["SIGTERM"]
        assert values(unit, "Service", "TimeoutStopSec")


# --- image and guide ----------------------------------------------------------------------


def test_dockerfile_essentials() -> None:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    instructions = [
        line.split(None, 1) for line in text.splitlines() if line and not line[0].isspace()
    ]
    instructions = [i for i in instructions if i[0].isupper() and len(i) == 2]
    assert instructions[0] == ["FROM", "python:3.11-slim"]
    users = [arg for op, arg in instructions if op == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert [arg for op, arg in instructions if op == "ENTRYPOINT"] == ['["servicemonth"]']
    assert "fonts-noto-cjk" in text
    assert text.index("pip install --require-hashes -r /tmp/build/requirements.lock") < text.index(
        "pip install --no-deps"
    )
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").split()
    assert {".venv", "var"} <= set(ignored)


def test_readme_mentions_only_real_commands() -> None:
    text = (DEPLOY / "README.md").read_text(encoding="utf-8")
    code = "\n".join(
        re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S) + re.findall(r"`([^`\n]+)`", text)
    )
    mentioned = set(re.findall(r"(?:^|[\s/])servicemonth ([a-z][a-z-]*)", code, flags=re.M))
    assert {"consume", "worker", "serve", "migrate", "dead-letters"} <= mentioned
    assert not mentioned - set(cli.commands), f"not commands: {mentioned - set(cli.commands)}"


def _pins(name: str) -> dict[str, str]:
    """``package: version`` of a lock file, each pin followed by its hashes."""
    text = (DEPLOY.parent / name).read_text(encoding="utf-8")
    entries = re.findall(
        r"^([A-Za-z0-9_.-]+)==(\S+) \\\n((?:\s+--hash=sha256:[0-9a-f]{64}(?: \\)?\n)+)", text, re.M
    )
    pins = [line for line in text.splitlines() if re.match(r"^[A-Za-z0-9_.-]+==", line)]
    assert len(entries) == len(pins), "every pin carries its hashes"
    return {re.sub(r"[-_.]+", "-", name).lower(): version for name, version, _ in entries}


def test_production_is_locked_apart_from_development_with_hashes() -> None:
    production, development = _pins("requirements.lock"), _pins("requirements-dev.lock")
    tools = {"pytest", "mypy", "ruff", "scipy", "hypothesis", "schemathesis", "playwright"}
    assert tools <= development.keys()
    assert not tools & production.keys()
    assert {"celery", "fastapi", "sqlalchemy", "kombu"} <= production.keys()
    assert {k: development[k] for k in production} == production  # the same versions
    assert production["kombu"].startswith("5.7.")  # fstransport relies on its internals


def test_every_consumer_worker_and_the_scheduler_is_checked_by_its_own_heartbeat(
    compose: dict[str, Any],
) -> None:
    """Compose shows a consumer stuck on its broker as unhealthy: `servicemonth alive` on the
    very process the container runs (its kind and service)."""
    for name, svc in app_services(compose).items():
        argv = argv_of(svc)
        if argv[0] not in ("consume", "worker", "scheduler"):
            continue
        check = svc.get("healthcheck", {})
        assert check.get("test") == ["CMD", "servicemonth", "alive", *argv[:2]], name
        assert check.get("interval") and check.get("retries"), name
