"""Every setting is parsed and checked when a process starts: ``servicemonth migrate`` with
a bad value stops with one line naming the key (README's promise), for every key of every
service. The list of keys comes from the settings models, so a new key cannot escape: it
needs a bad value below, or a line saying why it has none.

Also: nothing but ``shared/config.py`` reads the environment, and docs/contract.md lists
every key the models read.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic.fields import FieldInfo

from services.cli import main
from shared.config import (
    PREFIX,
    SECTIONS,
    SERVICES,
    ConfigError,
    Kind,
    all_keys,
    keys_of,
    load,
    settings,
)

ROOT = Path(__file__).resolve().parents[2]

#: A value each key refuses (by its plain spelling; the service-prefixed one gets the same).
BAD = {
    "DISTRICT": "110105",
    "SEPARATE_DISTRICTS": "410305,410300",
    "DEPLOYMENT": "luoyang west",
    "CAMPAIGN_START": "2016-06-31",
    "CAMPAIGN_END": "end of July",
    "HTTP_HOST": "my host",
    "HTTP_PORT": "http",
    "LOG_LEVEL": "LOUD",
    "LOG_FORMAT": "xml",
    "METRICS_TOKEN": "short",
    "REPORT_FILES_TOKEN": "short",
    "BROKER_URL": "redis://localhost:6379/0",
    "DATABASE_URL": "mysql://sm@db.example/servicemonth",
    "PII_KEY": "zz" * 32,
    "PII_LOOKUP_KEY": "12345",
    "TOKEN_TTL_HOURS": "a day",
    **{f"{s.upper()}_DATABASE_URL": "oracle://sm@db.example/x" for s in SERVICES},
    **{f"{s.upper()}_BROKER_URL": "redis://localhost/0" for s in SERVICES},
    "CLAIM_DAYS": "a week",
    "MAX_NEEDS_PER_MEMBER": "0",
    "MAX_PROJECTS_PER_MEMBER": "two",
    "NOTIFY_QUIET_HOURS": "late",
    "NOTIFY_SMS_DAILY_CAP": "two",
    "NOTIFY_FAILOVER_AFTER": "0",
    "NOTIFY_FAILOVER_COOLDOWN": "5 min",
    "NOTIFY_MAX_ATTEMPTS": "-1",
    "NOTIFY_RETRY_DELAY": "soon",
    "NOTIFY_CLAIM_WARNING_HOURS": "1.5",
    "NOTIFY_BATCH_AT": "25:00",
    "REMINDER_GRACE_HOURS": "a day",
    "SMS_PROVIDERS": "aliyn",
    "ALIYUN_SMS_ENDPOINT": "ftp://dysmsapi.aliyuncs.com",
    "TENCENT_SMS_SDK_APP_ID": "app-1",
    "TENCENT_SMS_REGION": "Guangzhou",
    "TENCENT_SMS_ENDPOINT": "sms tencent",
    "EMAIL_CHANNEL": "fax",
    "SMTP_HOST": "smtp example",
    "SMTP_PORT": "smtp",
    "SMTP_STARTTLS": "maybe",
    "SMTP_FROM": "noreply",
    "REPORTING_STALE_SECONDS": "ten minutes",
    "REPORTING_GRACE_HOURS": "-1",
    "REPORTING_MAX_ATTEMPTS": "0",
    "REPORTING_LAGGARD_THRESHOLD": "60%",
    "REPORTING_URL": "reporting:8000",
    "API_URL": "ftp://x",
    "PUBLIC_URL": "servicemonth.example",
}

_PATH = (
    "a path: its file is read and checked by the process that uses it, which may run on "
    "another machine than migrate"
)
_TEXT = "free text: any value is one someone could mean"
_SECRET = "a credential: any text; only the provider can say it is wrong"
#: Keys with no value load() could refuse, and why.
NO_BAD_VALUE = {
    "HOME": "a path: the folder is made when missing",
    "CLOCK_FILE": "a path: the simulated clock is made there when missing",
    "CAMPAIGN": _TEXT + " (the campaign's name)",
    "TOKEN_PRIVATE_KEY_FILE": _PATH,
    "PII_KEYS_FILE": _PATH,
    "TOKEN_PUBLIC_KEY_FILE": _PATH,
    "NOTIFY_WEBHOOK_TOKEN": _SECRET,
    "REMINDER_SCHEDULE": _PATH,
    "KICKOFF_PLACE": _TEXT + " (a place name)",
    "SMS_CODES_FILE": _PATH,
    "ALIYUN_ACCESS_KEY_ID": _SECRET,
    "ALIYUN_ACCESS_KEY_SECRET": _SECRET,
    "ALIYUN_SMS_SIGN_NAME": _TEXT + " (a signature approved by the provider)",
    "TENCENT_SECRET_ID": _SECRET,
    "TENCENT_SECRET_KEY": _SECRET,
    "TENCENT_SMS_SIGN_NAME": _TEXT + " (a signature approved by the provider)",
    "SMTP_USERNAME": _SECRET,
    "SMTP_PASSWORD": _SECRET,
    "WEB_SESSION_KEY_FILE": _PATH,
}

#: The keys of the issue: checked through a real ``servicemonth migrate`` process.
IN_A_PROCESS = [
    ("SERVICEMONTH_SMS_PROVIDERS", "aliyn"),
    ("SERVICEMONTH_NOTIFY_SMS_DAILY_CAP", "two"),
    ("SERVICEMONTH_REPORTING_LAGGARD_THRESHOLD", "60%"),
    ("SERVICEMONTH_NOTIFY_SMS_PROVIDERS", "aliyun,aliyun"),
]


def plain(key: str) -> str:
    return key[len(PREFIX) :]


def every_field() -> Iterator[tuple[str, FieldInfo]]:
    for name, section in SECTIONS.items():
        for field_name, info in section.model_fields.items():
            yield f"{name}.{field_name}", info


def bad_values() -> list[tuple[str, str]]:
    """(key, bad value) for every spelling of every key that has a bad value."""
    return [
        (key, BAD[plain(keys_of(info)[-1])])
        for _, info in every_field()
        for key in keys_of(info)
        if plain(keys_of(info)[-1]) in BAD
    ]


def test_every_key_has_a_bad_value_or_a_reason_for_having_none() -> None:
    named = {plain(keys_of(info)[-1]): where for where, info in every_field()}
    missing = sorted(set(named) - set(BAD) - set(NO_BAD_VALUE))
    assert missing == [], f"give these keys a bad value or a reason: {missing}"
    assert sorted(set(BAD) & set(NO_BAD_VALUE)) == []
    assert sorted((set(BAD) | set(NO_BAD_VALUE)) - set(named)) == [], "a key no model reads"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No SERVICEMONTH_* key but a throw-away home; the umask the CLI sets put back."""
    for key in [k for k in os.environ if k.startswith(PREFIX)]:
        monkeypatch.delenv(key)
    monkeypatch.setenv(f"{PREFIX}HOME", str(tmp_path / "home"))
    umask = os.umask(0o022)
    os.umask(umask)
    settings.cache_clear()
    yield tmp_path / "home"
    settings.cache_clear()
    os.umask(umask)


def migrate_in_process(capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    """``servicemonth migrate`` through the same entry point as the installed command."""
    settings.cache_clear()
    with pytest.raises(SystemExit) as stopped:
        main(["migrate"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return int(stopped.value.code or 0), lines


@pytest.mark.parametrize(("key", "value"), bad_values(), ids=lambda v: str(v)[:40])
def test_a_bad_value_stops_migrate_with_one_line_naming_its_key(
    key: str,
    value: str,
    clean_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(key, value)
    code, lines = migrate_in_process(capsys)
    assert code != 0
    assert len(lines) == 1, lines
    assert lines[0].startswith("servicemonth: configuration error: ") and key in lines[0]
    assert not clean_env.exists(), "migrate went ahead"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SMS_PROVIDERS": "file,aliyun"}, "SERVICEMONTH_ALIYUN_ACCESS_KEY_ID"),
        (
            {"SMS_PROVIDERS": "tencent", "TENCENT_SECRET_ID": "s", "TENCENT_SECRET_KEY": "k"},
            "SERVICEMONTH_TENCENT_SMS_SDK_APP_ID",
        ),
        (
            {"NOTIFY_SMS_PROVIDERS": "aliyun", "ALIYUN_ACCESS_KEY_ID": "a"},
            "SERVICEMONTH_ALIYUN_ACCESS_KEY_SECRET",
        ),
        (
            {
                "SMS_PROVIDERS": "aliyun",
                "ALIYUN_ACCESS_KEY_ID": "a",
                "ALIYUN_ACCESS_KEY_SECRET": "s",
            },
            "SERVICEMONTH_SMS_CODES_FILE",
        ),
        ({"EMAIL_CHANNEL": "smtp", "SMTP_FROM": "a <a@b.cn>"}, "SERVICEMONTH_SMTP_HOST"),
        ({"EMAIL_CHANNEL": "smtp", "SMTP_HOST": "smtp.b.cn"}, "SERVICEMONTH_SMTP_FROM"),
        (
            {
                "EMAIL_CHANNEL": "smtp",
                "SMTP_HOST": "smtp.b.cn",
                "SMTP_FROM": "a@b.cn",
                "SMTP_USERNAME": "a",
            },
            "SERVICEMONTH_SMTP_PASSWORD",
        ),
        ({"TOKEN_PRIVATE_KEY_FILE": "/etc/k.pem"}, "SERVICEMONTH_TOKEN_PUBLIC_KEY_FILE"),
        ({"BROKER_URL": "amqp://guest:guest@127.0.0.1:5672/x"}, "SERVICEMONTH_PII_KEY"),
        ({"CAMPAIGN_START": "2016-07-01", "CAMPAIGN_END": "2016-06-30"}, "CAMPAIGN_END"),
    ],
)
def test_a_setting_another_one_needs_is_named_when_missing(
    env: dict[str, str],
    named: str,
    clean_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(PREFIX + key, value)
    code, lines = migrate_in_process(capsys)
    assert code != 0 and len(lines) == 1 and named in lines[0], lines


@pytest.mark.parametrize(("key", "value"), IN_A_PROCESS)
def test_the_installed_command_stops_with_one_line_and_no_traceback(
    key: str, value: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    env.update({f"{PREFIX}HOME": str(tmp_path / "home"), key: value})
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "migrate"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith(f"servicemonth: configuration error: {key}")
    assert not (tmp_path / "home").exists()


def test_both_spellings_are_read_the_service_prefixed_one_winning() -> None:
    both = load({f"{PREFIX}NOTIFY_SMS_PROVIDERS": "File", f"{PREFIX}SMS_PROVIDERS": "aliyn"})
    assert both.notify.sms_providers == ("file",)
    assert load({f"{PREFIX}CLAIM_DAYS": "5"}).pairing.claim_days == 5
    assert (
        load({f"{PREFIX}PAIRING_CLAIM_DAYS": "3", f"{PREFIX}CLAIM_DAYS": "5"}).pairing.claim_days
        == 3
    )
    with pytest.raises(ConfigError) as info:
        load({f"{PREFIX}NOTIFY_SMTP_PORT": "x"})
    assert str(info.value).startswith(
        "SERVICEMONTH_NOTIFY_SMTP_PORT (notify's SERVICEMONTH_SMTP_PORT): 'x' is not a TCP port"
    )


def test_the_accidental_double_prefix_is_not_read() -> None:
    assert load({f"{PREFIX}NOTIFY_NOTIFY_SMS_DAILY_CAP": "5"}).notify.sms_daily_cap == 2
    assert load({f"{PREFIX}NOTIFY_NOTIFY_WEBHOOK_TOKEN": "t"}).notify.webhook_token is None


def test_defaults_with_nothing_set() -> None:
    config = load({})
    assert config.notify.sms_providers == ("file",)
    assert config.notify.quiet_hours is not None
    assert [t.isoformat("minutes") for t in config.notify.quiet_hours] == ["20:00", "08:00"]
    assert (config.notify.sms_daily_cap, config.notify.max_attempts) == (2, 8)
    assert (config.notify.smtp_port, config.notify.smtp_starttls) == (25, False)
    assert config.pairing.max_needs_per_member == config.pairing.max_projects_per_member == 2
    assert config.reporting.laggard_threshold == 0.6
    assert config.token_ttl.total_seconds() == 12 * 3600


def test_a_secret_is_not_in_the_error_or_the_repr() -> None:
    with pytest.raises(ConfigError) as info:
        load({f"{PREFIX}PII_KEY": "secret-but-not-hex"})
    assert "secret-but-not-hex" not in str(info.value)
    config = load({f"{PREFIX}SMTP_PASSWORD": "pw-123", f"{PREFIX}NOTIFY_WEBHOOK_TOKEN": "tok-9"})
    assert "pw-123" not in repr(config.notify) and "tok-9" not in repr(config.notify)


# --- the environment is read in one place ---------------------------------------------------


def _environment_reads(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
            and node.attr in ("environ", "environb", "getenv", "getenvb", "putenv", "unsetenv")
        ):
            found.append(f"line {node.lineno}: os.{node.attr}")
        if isinstance(node, ast.ImportFrom) and node.module == "os":
            found += [f"line {node.lineno}: from os import {a.name}" for a in node.names]
    return found


def test_nothing_but_shared_config_reads_the_environment() -> None:
    files = [p for d in ("shared", "services", "bench") for p in sorted((ROOT / d).rglob("*.py"))]
    assert len(files) > 50
    reads = {
        str(path.relative_to(ROOT)): found
        for path in files
        if path != ROOT / "shared" / "config.py" and (found := _environment_reads(path))
    }
    assert reads == {}


# --- the documented table -------------------------------------------------------------------


def kind_of(info: FieldInfo) -> str:
    """The value type as the settings table says it (the ``Kind`` on the field's type)."""
    for item in info.metadata:
        if isinstance(item, Kind):
            return item.text
    for arg in typing.get_args(info.annotation):
        for item in getattr(arg, "__metadata__", ()):
            if isinstance(item, Kind):
                return item.text
    return "text"


def documented_rows() -> dict[str, str]:
    """Key → row of the table under '### Every key' in docs/contract.md."""
    text = (ROOT / "docs" / "contract.md").read_text(encoding="utf-8")
    section = text.split("### Every key", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        if line.startswith("| `"):
            for key in re.findall(r"`(SERVICEMONTH_[A-Z0-9_]+)`", line.split("|")[1]):
                rows[key] = line
    return rows


def model_rows() -> list[str]:
    """The table's rows as the models say them (print them to refresh the docs)."""
    rows = []
    for section in SECTIONS.values():
        rows.append(f"| **{section.title}** | | | |")
        for info in section.model_fields.values():
            keys = " or ".join(f"`{key}`" for key in keys_of(info))
            shown = (info.json_schema_extra or {}).get("shown")  # type: ignore[union-attr]
            default = shown or ("—" if info.default is None else str(info.default))
            rows.append(f"| {keys} | {kind_of(info)} | {default} | {info.description} |")
    return rows


def test_the_contract_lists_every_key_the_models_read() -> None:
    documented = documented_rows()
    assert sorted(documented) == sorted(all_keys()), "\n".join(model_rows())
