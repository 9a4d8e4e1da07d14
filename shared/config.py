"""Every setting of servicemonth, read and checked in one place.

Keys come from the environment (this is the only module that reads it). Each key is a
field of a typed pydantic-settings model: :class:`CommonSettings` for what every process
uses, and one model per service (``settings.registration``, ``.pairing``, ``.notify``,
``.reporting``, ``.web``). :func:`load` parses and checks every key of every model, so any
process of any service, ``servicemonth migrate`` included, stops at start with
:class:`ConfigError` — one line naming the key — on a bad value.

Some keys have two spellings: the service-prefixed one wins
(``SERVICEMONTH_NOTIFY_SMS_PROVIDERS`` over ``SERVICEMONTH_SMS_PROVIDERS``), and each service
may have its own database and broker (``SERVICEMONTH_PAIRING_DATABASE_URL`` over
``SERVICEMONTH_DATABASE_URL``). An empty value means "not set". With nothing set, the
embedded default applies: SQLite files and the filesystem broker under
``SERVICEMONTH_HOME`` (``./var``).

The plain ``SERVICEMONTH_DATABASE_URL`` names a server and a base name; each service gets
its own database on it, ``<base>_<service>``, so four services never share tables.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import stat
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from email.utils import parseaddr
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Literal, Self
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from pydantic import (
    AliasChoices,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

PREFIX = "SERVICEMONTH_"
SERVICES = ("registration", "pairing", "notify", "reporting")
CITY = "410300"
#: Luoyang's county-level divisions, current and retired (偃师市 410381 became 偃师区 410307
#: and 孟津县 410322 with 吉利区 410306 became 孟津区 410308 in 2021; old codes stay valid).
DISTRICTS = (
    "410302", "410303", "410304", "410305", "410306", "410307", "410308", "410311",
    "410322", "410323", "410324", "410325", "410326", "410327", "410328", "410329", "410381",
)  # fmt: skip
CAMPAIGN_TZ = ZoneInfo("Asia/Shanghai")
EMBEDDED_BROKER = "sfs://"
SMS_CHOICES = ("file", "aliyun", "tencent")
#: What the processes of servicemonth create under SERVICEMONTH_HOME (SQLite databases, the
#: broker's folders, the outbox, reports, keys) holds personal data and secrets: readable
#: and writable by the service's user only.
PRIVATE_UMASK = 0o077


class ConfigError(Exception):
    """A setting is missing or malformed; the message (one line) names the key."""


# --- value types: each parses the raw text and says in words what it expected ------------


@dataclass(frozen=True)
class Kind:
    """How the settings table in docs/contract.md describes a value type."""

    text: str


def _before(parse: Callable[[str], Any]) -> BeforeValidator:
    """Parse raw text from the environment; values given in Python pass through."""
    return BeforeValidator(lambda raw: parse(raw) if isinstance(raw, str) else raw)


def _whole_number(minimum: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        if not re.fullmatch(r"[0-9]{1,9}", raw.strip()) or int(raw) < minimum:
            above = f" ≥ {minimum}" if minimum else ""
            raise ValueError(f"{raw!r} is not a whole number{above}")
        return int(raw)

    return parse


def _number(raw: str, low: float, high: float, what: str) -> float:
    text = raw.strip()
    if not re.fullmatch(r"[0-9]{1,6}(\.[0-9]+)?", text) or not low <= float(text) <= high:
        raise ValueError(f"{raw!r} is not {what}")
    return float(text)


def _duration(unit: str, low: float, high: float, what: str) -> Callable[[str], timedelta]:
    return lambda raw: timedelta(**{unit: _number(raw, low, high, what)})


def _clock_time(raw: str) -> time:
    match = re.fullmatch(r"\s*([0-9]{1,2}):([0-9]{2})\s*", raw)
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise ValueError(f"{raw!r} is not a time of day like 17:00")
    return time(int(match[1]), int(match[2]))


def _quiet_hours(raw: str) -> tuple[time, time] | None:
    if raw.strip().lower() in ("off", "none", "-"):
        return None
    start, sep, end = raw.partition("-")
    try:
        if not sep:
            raise ValueError
        hours = _clock_time(start), _clock_time(end)
    except ValueError:
        raise ValueError(f"{raw!r} is not like 20:00-08:00 (or 'off')") from None
    return None if hours[0] == hours[1] else hours


def _flag(raw: str) -> bool:
    text = raw.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{raw!r} is not true or false")


def _port(raw: str) -> int:
    if not re.fullmatch(r"[0-9]{1,5}", raw.strip()) or not 0 < int(raw) < 65536:
        raise ValueError(f"{raw!r} is not a TCP port")
    return int(raw)


def _date(raw: str) -> date:
    try:
        return date.fromisoformat(raw.strip())
    except ValueError:
        raise ValueError(f"{raw!r} is not a date (YYYY-MM-DD)") from None


def _district(raw: str) -> str:
    if not re.fullmatch(r"41[0-9]{4}", raw):
        raise ValueError(f"{raw!r} is not a county-level code like 410303")
    return raw


def _separate_districts(raw: str) -> tuple[str, ...]:
    codes = tuple(c.strip() for c in raw.split(",") if c.strip())
    unknown = [c for c in codes if c not in DISTRICTS]
    if unknown or len(set(codes)) != len(codes):
        raise ValueError(
            f"{raw!r}: name each of Luoyang's county-level codes (410302 … 410381, not the "
            "city's 410300) at most once, e.g. 410303,410305"
        )
    return codes


def _deployment(raw: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", raw):
        raise ValueError("use letters, digits, '-' or '_' (≤ 40)")
    return raw


def _host(raw: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9._:%\[\]-]{1,253}", raw.strip()):
        raise ValueError(f"{raw!r} is not a host name or address")
    return raw.strip()


def _endpoint(raw: str) -> str:
    if not re.fullmatch(r"(https?://)?[A-Za-z0-9.-]+(:[0-9]{1,5})?/?", raw.strip()):
        raise ValueError(f"{raw!r} is not a host name (or http(s)://host:port)")
    return raw.strip()


def _region(raw: str) -> str:
    if not re.fullmatch(r"[a-z]{2,}-[a-z0-9-]+", raw.strip()):
        raise ValueError(f"{raw!r} is not a region like ap-guangzhou")
    return raw.strip()


def _digits(raw: str) -> str:
    if not re.fullmatch(r"[0-9]{1,20}", raw.strip()):
        raise ValueError(f"{raw!r} is not a number (digits only)")
    return raw.strip()


def _log_level(raw: str) -> str:
    level = raw.strip().upper()
    if level not in logging.getLevelNamesMapping():
        raise ValueError(f"{raw!r} is not a log level (DEBUG, INFO, WARNING, ERROR)")
    return level


def _log_format(raw: str) -> str:
    kind = raw.strip().lower()
    if kind not in ("json", "text"):
        raise ValueError(f"{raw!r} is not one of json, text")
    return kind


def _metrics_token(raw: str) -> SecretStr:
    if len(raw.strip()) < 24:
        raise ValueError("too short to be a secret: at least 24 characters")
    return SecretStr(raw.strip())


def _http_url(raw: str) -> str:
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{raw!r} is not an http(s) URL")
    return raw.strip().rstrip("/")


def _address(raw: str) -> str:
    if "@" not in parseaddr(raw)[1]:
        raise ValueError(f"{raw!r} is not an e-mail address (name <user@host>)")
    return raw.strip()


def _pii_key(raw: str) -> str:
    try:
        key = bytes.fromhex(raw)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise ValueError("expected 64 hexadecimal digits (32 bytes)")
    return raw


def _sms_providers(raw: str) -> tuple[str, ...]:
    names = tuple(n.strip().lower() for n in raw.split(",") if n.strip())
    if not names or any(n not in SMS_CHOICES for n in names) or len(set(names)) != len(names):
        raise ValueError(
            f"{raw!r}: name each of {', '.join(SMS_CHOICES)} at most once, in failover order "
            "(e.g. aliyun,tencent)"
        )
    return names


def _email_channel(raw: str) -> str:
    kind = raw.strip().lower()
    if kind not in ("file", "smtp"):
        raise ValueError(f"{kind!r} is not one of file, smtp")
    return kind


def _broker_url(raw: str) -> str:
    if not re.match(r"^(sfs|amqp|pyamqp|amqps|memory)://", raw):
        raise ValueError(
            f"{raw.split('://')[0]!r} is not a supported broker "
            "(use amqp://user:pass@host:5672/vhost, or leave it unset for the embedded one)"
        )
    return raw


def _database_url(raw: str) -> str:
    try:
        url = make_url(raw)
    except ArgumentError:
        raise ValueError("not a database URL") from None
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError(f"{url.get_backend_name()!r} is not supported (sqlite, postgresql)")
    if url.get_backend_name() == "postgresql" and url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


def _resolved(raw: str) -> Path:
    return Path(raw).resolve()


Count = Annotated[int, _before(_whole_number(0)), Kind("whole number ≥ 0")]
AtLeastOne = Annotated[int, _before(_whole_number(1)), Kind("whole number ≥ 1")]
Port = Annotated[int, _before(_port), Kind("TCP port (1-65535)")]
Flag = Annotated[bool, _before(_flag), Kind("true/false (also 1/0, yes/no, on/off)")]
ClockTime = Annotated[time, _before(_clock_time), Kind("time of day HH:MM")]
Day = Annotated[date, _before(_date), Kind("date YYYY-MM-DD")]
QuietHours = Annotated[tuple[time, time] | None, _before(_quiet_hours), Kind("HH:MM-HH:MM, or off")]
Fraction = Annotated[
    float,
    _before(lambda raw: _number(raw, 0, 1, "a fraction between 0 and 1 (e.g. 0.6)")),
    Kind("fraction 0-1"),
]
DelaySeconds = Annotated[
    float,
    _before(lambda raw: _number(raw, 0, 3600, "a number of seconds (0-3600)")),
    Kind("seconds (0-3600)"),
]
District = Annotated[str, _before(_district), Kind("county-level code 41xxxx")]
SeparateDistricts = Annotated[
    tuple[str, ...], _before(_separate_districts), Kind("list of county-level codes")
]
Deployment = Annotated[str, _before(_deployment), Kind("name: letters, digits, - or _ (≤ 40)")]
Host = Annotated[str, _before(_host), Kind("host name or address")]
Endpoint = Annotated[str, _before(_endpoint), Kind("host name (or http(s)://host:port)")]
Region = Annotated[str, _before(_region), Kind("region name")]
Digits = Annotated[str, _before(_digits), Kind("digits")]
LogLevel = Annotated[str, _before(_log_level), Kind("DEBUG, INFO, WARNING or ERROR")]
LogFormat = Annotated[str, _before(_log_format), Kind("json or text")]
MetricsToken = Annotated[SecretStr, _before(_metrics_token), Kind("secret text (≥ 24 characters)")]
HttpUrl = Annotated[str, _before(_http_url), Kind("http(s) URL")]
Address = Annotated[str, _before(_address), Kind("e-mail address")]
PiiKey = Annotated[SecretStr, _before(lambda raw: SecretStr(_pii_key(raw))), Kind("64 hex digits")]
SmsProviders = Annotated[
    tuple[Literal["file", "aliyun", "tencent"], ...],
    _before(_sms_providers),
    Kind("list of file, aliyun, tencent"),
]
EmailChannel = Annotated[Literal["file", "smtp"], _before(_email_channel), Kind("file or smtp")]
BrokerUrl = Annotated[str, _before(_broker_url), Kind("broker URL (amqp://…, sfs://)")]
DatabaseUrl = Annotated[
    str, _before(_database_url), Kind("database URL (postgresql://…, sqlite:///…)")
]
ResolvedPath = Annotated[Path, _before(_resolved), Kind("path")]
FilePath = Annotated[Path, Kind("path")]
Text = Annotated[str, Kind("text")]
Secret = Annotated[SecretStr, Kind("secret text")]


# --- reading keys from a mapping ---------------------------------------------------------


def setting(default: Any, key: str, doc: str, *, service: str = "", shown: str = "") -> Any:
    """A field read from ``key``; with ``service``, ``SERVICEMONTH_<SERVICE>_<key>`` is read
    first and wins. ``shown``: the default as the settings table says it."""
    keys = (f"{PREFIX}{service.upper()}_{key[len(PREFIX) :]}", key) if service else (key,)
    return Field(
        default,
        validation_alias=AliasChoices(*keys),
        description=doc,
        json_schema_extra={"shown": shown} if shown else None,
    )


def _own(service: str, key: str) -> str:
    """A key only one service reads: ``SERVICEMONTH_<SERVICE>_<key>``."""
    return f"{PREFIX}{service.upper()}_{key}"


def keys_of(info: FieldInfo) -> tuple[str, ...]:
    """The keys a field is read from, the winning spelling first."""
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        return tuple(str(choice) for choice in alias.choices)
    return (str(alias),) if alias else ()


_ENV: ContextVar[Mapping[str, str]] = ContextVar("servicemonth_env", default=MappingProxyType({}))


class _MappingSource(PydanticBaseSettingsSource):
    """Each field's raw text from the mapping :func:`load` was given, under the key it was
    found at (so a validation error names that key). Empty means not set."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self.env = env

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        for key in keys_of(field):
            raw = self.env.get(key)
            if raw:
                return raw, key, False
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for name, info in self.settings_cls.model_fields.items():
            raw, key, _ = self.get_field_value(info, name)
            if raw is not None:
                found[key] = raw
        return found


class Section(BaseSettings):
    """A group of settings read from one mapping of ``SERVICEMONTH_*`` keys."""

    model_config = SettingsConfigDict(
        frozen=True, extra="ignore", populate_by_name=True, validate_default=False
    )
    #: Which settings these are, for the table in docs/contract.md.
    title: ClassVar[str] = ""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, _MappingSource(settings_cls, _ENV.get())

    @classmethod
    def read(cls, env: Mapping[str, str]) -> Self:
        """Parse and check every key of this section; :class:`ConfigError` names a bad one."""
        token = _ENV.set(env)
        try:
            return cls()
        except ValidationError as exc:
            raise ConfigError(cls._explain(exc)) from None
        finally:
            _ENV.reset(token)

    @classmethod
    def key_fields(cls) -> Iterator[tuple[str, FieldInfo]]:
        """(key, field) for every spelling of every key, the winning spelling first."""
        for info in cls.model_fields.values():
            for key in keys_of(info):
                yield key, info

    @classmethod
    def _explain(cls, exc: ValidationError) -> str:
        error = exc.errors(include_url=False)[0]
        key = str(error["loc"][0]) if error["loc"] else cls.__name__
        message = str(error["msg"]).removeprefix("Value error, ")
        for info in cls.model_fields.values():
            spellings = keys_of(info)
            if key == spellings[0] and len(spellings) > 1:
                service = key[len(PREFIX) :].split("_")[0].lower()
                key = f"{key} ({service}'s {spellings[1]})"
        return " ".join(f"{key}: {message}".split())


def _required(value: object, key: str, because: str) -> None:
    if not value:
        raise ConfigError(f"{key}: required with {because}")


# --- the settings ------------------------------------------------------------------------


class CommonSettings(Section):
    """What every process reads."""

    title = "every process"

    home: ResolvedPath = setting(
        Path("var"),
        f"{PREFIX}HOME",
        "state: SQLite files, the embedded broker, outbox/, reports/, keys/",
        shown="./var",
    )
    district: District = setting(
        CITY, f"{PREFIX}DISTRICT", "the county-level code this deployment serves (the city)"
    )
    separate_districts: SeparateDistricts = setting(
        (),
        f"{PREFIX}SEPARATE_DISTRICTS",
        "the city's only: the districts that run a deployment of their own; the city's "
        "pairing and notify leave their members to it (its reporting still counts them)",
        shown="none: the city serves every district",
    )
    deployment: Deployment | None = setting(
        None,
        f"{PREFIX}DEPLOYMENT",
        "names the deployment's queues; never changes after go-live",
        shown="the district",
    )
    campaign: Text | None = setting(
        None,
        f"{PREFIX}CAMPAIGN",
        "the campaign's name in audit rows",
        shown="servicemonth-YYYY (the start's year)",
    )
    campaign_start: Day = setting(
        date(2016, 6, 26), f"{PREFIX}CAMPAIGN_START", "the campaign's first day"
    )
    campaign_end: Day = setting(
        date(2016, 7, 31), f"{PREFIX}CAMPAIGN_END", "the campaign's last day"
    )
    http_host: Host = setting("127.0.0.1", f"{PREFIX}HTTP_HOST", "where HTTP listens")
    http_port: Port = setting(8000, f"{PREFIX}HTTP_PORT", "the port HTTP listens on")
    clock_file: ResolvedPath | None = setting(
        None, f"{PREFIX}CLOCK_FILE", "a simulated clock every process shares (demo, tests)"
    )
    log_level: LogLevel = setting("INFO", f"{PREFIX}LOG_LEVEL", "how much the processes log")
    log_format: LogFormat = setting(
        "json", f"{PREFIX}LOG_FORMAT", "log lines as JSON objects, or text for a terminal"
    )
    metrics_token: MetricsToken | None = setting(
        None,
        f"{PREFIX}METRICS_TOKEN",
        "the bearer token GET /metrics asks of callers not on loopback",
        shown="— (loopback only)",
    )
    report_files_token: MetricsToken | None = setting(
        None,
        f"{PREFIX}REPORT_FILES_TOKEN",
        "the bearer token with which notify reads report files from reporting (it reads "
        "nothing else); the same in both",
        shown="made once under HOME/keys/",
    )
    broker_url: BrokerUrl = setting(
        EMBEDDED_BROKER,
        f"{PREFIX}BROKER_URL",
        "the broker every service shares (amqp://user:pass@host:5672/vhost in production)",
        shown="sfs:// (embedded)",
    )
    database_url: DatabaseUrl | None = setting(
        None,
        f"{PREFIX}DATABASE_URL",
        "a server and a base name: each service gets its own database, base_service",
        shown="a SQLite file per service under HOME",
    )
    pii_key: PiiKey | None = setting(
        None,
        f"{PREFIX}PII_KEY",
        "seals ID numbers and phones, keys their hashes; the same "
        "in every service and deployment (required with a production broker)",
        shown="made once under HOME/keys/",
    )
    pii_keys_file: FilePath | None = setting(
        None,
        f"{PREFIX}PII_KEYS_FILE",
        "more personal-data keys, one line each: version (2, 3 …) and 64 hex digits (and "
        "`next`: opens, does not seal yet); the newest seals, every one opens (the plain "
        "PII_KEY is version 1)",
        shown="none: PII_KEY alone",
    )
    pii_lookup_key: PiiKey | None = setting(
        None,
        f"{PREFIX}PII_LOOKUP_KEY",
        "keys the look-up hashes once key version 1 is retired (`servicemonth keys "
        "lookup-key` prints it)",
        shown="derived from version 1",
    )
    token_private_key_file: FilePath | None = setting(
        None,
        f"{PREFIX}TOKEN_PRIVATE_KEY_FILE",
        "Ed25519 key signing tokens (registration)",
        shown="a pair made once under HOME/keys/",
    )
    token_public_key_file: FilePath | None = setting(
        None,
        f"{PREFIX}TOKEN_PUBLIC_KEY_FILE",
        "its public key, checking tokens (every service)",
        shown="a pair made once under HOME/keys/",
    )
    token_ttl: Annotated[
        timedelta,
        _before(_duration("hours", 0.001, 168, "a number of hours (≤ 168)")),
        Kind("hours (≤ 168)"),
    ] = setting(
        timedelta(hours=12), f"{PREFIX}TOKEN_TTL_HOURS", "how long a session lasts", shown="12"
    )

    @model_validator(mode="after")
    def _together(self) -> Self:
        if self.campaign_end < self.campaign_start:
            raise ConfigError(
                f"{PREFIX}CAMPAIGN_END: {self.campaign_end} is before the start "
                f"{self.campaign_start}"
            )
        if (
            not self.broker_url.startswith(EMBEDDED_BROKER)
            and self.pii_key is None
            and self.pii_keys_file is None
        ):
            # Every process of a real deployment must seal and open with the same key.
            raise ConfigError(f"{PREFIX}PII_KEY: required with a production broker (64 hex digits)")
        if self.separate_districts and self.district != CITY:
            raise ConfigError(
                f"{PREFIX}SEPARATE_DISTRICTS: only the city's deployment ({CITY}) names them"
            )
        _required(
            self.token_public_key_file or not self.token_private_key_file,
            f"{PREFIX}TOKEN_PUBLIC_KEY_FILE",
            "the private key file",
        )
        return self


class RegistrationSettings(Section):
    """Registration's own settings."""

    title = "registration"

    database_url: DatabaseUrl | None = setting(
        None,
        _own("registration", "DATABASE_URL"),
        "registration's own database",
        shown="the plain key's",
    )
    broker_url: BrokerUrl | None = setting(
        None,
        _own("registration", "BROKER_URL"),
        "registration's own broker",
        shown="the plain key's",
    )


class PairingSettings(Section):
    """Pairing's own settings."""

    title = "pairing"

    database_url: DatabaseUrl | None = setting(
        None, _own("pairing", "DATABASE_URL"), "pairing's own database", shown="the plain key's"
    )
    broker_url: BrokerUrl | None = setting(
        None, _own("pairing", "BROKER_URL"), "pairing's own broker", shown="the plain key's"
    )
    claim_days: AtLeastOne = setting(
        7,
        f"{PREFIX}CLAIM_DAYS",
        "days a claimed wish stays claimed without fulfilment",
        service="pairing",
    )
    max_needs_per_member: AtLeastOne = setting(
        2,
        f"{PREFIX}MAX_NEEDS_PER_MEMBER",
        "the most needs one member is paired with",
        service="pairing",
    )
    max_projects_per_member: AtLeastOne = setting(
        2,
        f"{PREFIX}MAX_PROJECTS_PER_MEMBER",
        "the most projects one member is paired with",
        service="pairing",
    )


class NotifySettings(Section):
    """Notify's own settings: pacing, the reminder calendar, channels and providers."""

    title = "notify"

    database_url: DatabaseUrl | None = setting(
        None, _own("notify", "DATABASE_URL"), "notify's own database", shown="the plain key's"
    )
    broker_url: BrokerUrl | None = setting(
        None, _own("notify", "BROKER_URL"), "notify's own broker", shown="the plain key's"
    )
    quiet_hours: QuietHours = setting(
        (time(20, 0), time(8, 0)),
        f"{PREFIX}NOTIFY_QUIET_HOURS",
        "non-urgent messages wait for the end of them (Asia/Shanghai)",
        shown="20:00-08:00",
    )
    sms_daily_cap: Count = setting(
        2,
        f"{PREFIX}NOTIFY_SMS_DAILY_CAP",
        "SMS per person per campaign day; more are merged into the next morning's digest",
    )
    failover_after: AtLeastOne = setting(
        3,
        f"{PREFIX}NOTIFY_FAILOVER_AFTER",
        "transient failures in a row before a provider cools down",
    )
    failover_cooldown: Annotated[
        timedelta,
        _before(lambda raw: timedelta(seconds=_whole_number(0)(raw))),
        Kind("whole seconds"),
    ] = setting(
        timedelta(minutes=5),
        f"{PREFIX}NOTIFY_FAILOVER_COOLDOWN",
        "how long a failing provider rests",
        shown="300",
    )
    max_attempts: AtLeastOne = setting(
        8, f"{PREFIX}NOTIFY_MAX_ATTEMPTS", "tries of one message before it is given up"
    )
    retry_delay: DelaySeconds = setting(
        2.0, f"{PREFIX}NOTIFY_RETRY_DELAY", "the first retry's delay (doubling)", shown="2"
    )
    claim_warning: Annotated[
        timedelta,
        _before(lambda raw: timedelta(hours=_whole_number(1)(raw))),
        Kind("whole hours ≥ 1"),
    ] = setting(
        timedelta(hours=24),
        f"{PREFIX}NOTIFY_CLAIM_WARNING_HOURS",
        "how long before a claim expires its claimer is warned",
        shown="24",
    )
    batch_at: ClockTime = setting(
        time(17, 0),
        f"{PREFIX}NOTIFY_BATCH_AT",
        "when the day's batched messages go",
        shown="17:00",
    )
    reporting_url: HttpUrl | None = setting(
        None,
        f"{PREFIX}REPORTING_URL",
        "where notify fetches report files from reporting's API (the leader's report e-mail)",
        service="notify",
        shown="this machine's HTTP port",
    )
    webhook_token: Secret | None = setting(
        None,
        f"{PREFIX}NOTIFY_WEBHOOK_TOKEN",
        "the ?token= of the providers' callback URLs (callbacks answer 503 while unset)",
    )
    reminder_schedule: FilePath | None = setting(
        None,
        f"{PREFIX}REMINDER_SCHEDULE",
        "a JSON calendar replacing the default reminders",
        service="notify",
        shown="built in",
    )
    reminder_grace: Annotated[
        timedelta,
        _before(_duration("hours", 0, 9999, "hours ≥ 0")),
        Kind("hours ≥ 0"),
    ] = setting(
        timedelta(hours=24),
        f"{PREFIX}REMINDER_GRACE_HOURS",
        "a reminder slot missed by more is skipped",
        service="notify",
        shown="24",
    )
    kickoff_place: Text | None = setting(
        None,
        f"{PREFIX}KICKOFF_PLACE",
        "where the kick-off takes place (≤ 40 characters)",
        service="notify",
        shown="the built-in place",
    )
    sms_providers: SmsProviders = setting(
        ("file",),
        f"{PREFIX}SMS_PROVIDERS",
        "SMS providers in failover order (file: the outbox under HOME)",
        service="notify",
        shown="file",
    )
    sms_codes_file: FilePath | None = setting(
        None,
        f"{PREFIX}SMS_CODES_FILE",
        "approved template codes (like templates/sms_codes.toml); required with a real provider",
        service="notify",
    )
    aliyun_access_key_id: Text | None = setting(
        None,
        f"{PREFIX}ALIYUN_ACCESS_KEY_ID",
        "Aliyun credentials (required with aliyun)",
        service="notify",
    )
    aliyun_access_key_secret: Secret | None = setting(
        None,
        f"{PREFIX}ALIYUN_ACCESS_KEY_SECRET",
        "Aliyun credentials (required with aliyun)",
        service="notify",
    )
    aliyun_sms_sign_name: Text | None = setting(
        None,
        f"{PREFIX}ALIYUN_SMS_SIGN_NAME",
        "the approved SMS signature",
        service="notify",
        shown="在职党员进社区",
    )
    aliyun_sms_endpoint: Endpoint = setting(
        "dysmsapi.aliyuncs.com",
        f"{PREFIX}ALIYUN_SMS_ENDPOINT",
        "Aliyun's SMS API",
        service="notify",
    )
    tencent_secret_id: Text | None = setting(
        None,
        f"{PREFIX}TENCENT_SECRET_ID",
        "Tencent credentials (required with tencent)",
        service="notify",
    )
    tencent_secret_key: Secret | None = setting(
        None,
        f"{PREFIX}TENCENT_SECRET_KEY",
        "Tencent credentials (required with tencent)",
        service="notify",
    )
    tencent_sms_sdk_app_id: Digits | None = setting(
        None,
        f"{PREFIX}TENCENT_SMS_SDK_APP_ID",
        "the SMS application (required with tencent)",
        service="notify",
    )
    tencent_sms_sign_name: Text | None = setting(
        None,
        f"{PREFIX}TENCENT_SMS_SIGN_NAME",
        "the approved SMS signature",
        service="notify",
        shown="在职党员进社区",
    )
    tencent_sms_region: Region = setting(
        "ap-guangzhou", f"{PREFIX}TENCENT_SMS_REGION", "Tencent's region", service="notify"
    )
    tencent_sms_endpoint: Endpoint = setting(
        "sms.tencentcloudapi.com",
        f"{PREFIX}TENCENT_SMS_ENDPOINT",
        "Tencent's SMS API",
        service="notify",
    )
    email_channel: EmailChannel = setting(
        "file", f"{PREFIX}EMAIL_CHANNEL", "file (the outbox) or smtp", service="notify"
    )
    smtp_host: Host | None = setting(
        None, f"{PREFIX}SMTP_HOST", "the SMTP server (required with smtp)", service="notify"
    )
    smtp_port: Port = setting(25, f"{PREFIX}SMTP_PORT", "its port", service="notify")
    smtp_starttls: Flag = setting(
        False,
        f"{PREFIX}SMTP_STARTTLS",
        "STARTTLS before signing in",
        service="notify",
        shown="false",
    )
    smtp_username: Text | None = setting(
        None, f"{PREFIX}SMTP_USERNAME", "sign in as (needs the password)", service="notify"
    )
    smtp_password: Secret | None = setting(
        None, f"{PREFIX}SMTP_PASSWORD", "its password", service="notify"
    )
    smtp_from: Address | None = setting(
        None,
        f"{PREFIX}SMTP_FROM",
        "the sender (required with smtp)",
        service="notify",
        shown="the outbox's own sender with file",
    )

    @model_validator(mode="after")
    def _together(self) -> Self:
        for provider in self.sms_providers:
            needed: dict[str, object] = {}
            if provider == "aliyun":
                needed = {
                    "ACCESS_KEY_ID": self.aliyun_access_key_id,
                    "ACCESS_KEY_SECRET": self.aliyun_access_key_secret,
                }
            elif provider == "tencent":
                needed = {
                    "SECRET_ID": self.tencent_secret_id,
                    "SECRET_KEY": self.tencent_secret_key,
                    "SMS_SDK_APP_ID": self.tencent_sms_sdk_app_id,
                }
            else:
                continue
            for name, value in needed.items():
                _required(
                    value, f"{PREFIX}{provider.upper()}_{name}", f"the SMS provider {provider}"
                )
            _required(
                self.sms_codes_file,
                f"{PREFIX}SMS_CODES_FILE",
                f"the SMS provider {provider} (its approved template codes)",
            )
        if self.email_channel == "smtp":
            _required(self.smtp_host, f"{PREFIX}SMTP_HOST", "EMAIL_CHANNEL=smtp")
            _required(self.smtp_from, f"{PREFIX}SMTP_FROM", "EMAIL_CHANNEL=smtp")
            _required(
                self.smtp_password or not self.smtp_username,
                f"{PREFIX}SMTP_PASSWORD",
                f"{PREFIX}SMTP_USERNAME",
            )
        return self


class ReportingSettings(Section):
    """Reporting's own settings: its runs' policy and the report's laggard line."""

    title = "reporting"

    database_url: DatabaseUrl | None = setting(
        None,
        _own("reporting", "DATABASE_URL"),
        "reporting's own database",
        shown="the plain key's",
    )
    broker_url: BrokerUrl | None = setting(
        None, _own("reporting", "BROKER_URL"), "reporting's own broker", shown="the plain key's"
    )
    stale: Annotated[
        timedelta,
        _before(_duration("seconds", 1, 10**6, "a number of seconds ≥ 1")),
        Kind("seconds ≥ 1"),
    ] = setting(
        timedelta(seconds=600),
        f"{PREFIX}REPORTING_STALE_SECONDS",
        "a run claimed longer ago than this is taken over",
        shown="600",
    )
    grace: Annotated[
        timedelta,
        _before(_duration("hours", 0, 9999, "a number of hours ≥ 0")),
        Kind("hours ≥ 0"),
    ] = setting(
        timedelta(hours=24),
        f"{PREFIX}REPORTING_GRACE_HOURS",
        "a report slot missed by more is skipped",
        shown="24",
    )
    max_attempts: AtLeastOne = setting(
        3, f"{PREFIX}REPORTING_MAX_ATTEMPTS", "tries of one run before it fails"
    )
    laggard_threshold: Fraction = setting(
        0.6,
        f"{PREFIX}REPORTING_LAGGARD_THRESHOLD",
        "below this dual-pairing rate a district or unit is listed as behind",
    )


class WebAppSettings(Section):
    """The web app's settings (``services/web/config.py`` adds the session key's content)."""

    title = "web"

    api_url: HttpUrl | None = setting(
        None,
        f"{PREFIX}API_URL",
        "where the web app calls the services' API",
        shown="this machine's HTTP port",
    )
    public_url: HttpUrl | None = setting(
        None,
        f"{PREFIX}PUBLIC_URL",
        "the address people open (QR posters; https makes the cookie Secure)",
        shown="where the web app listens",
    )
    session_key_file: FilePath | None = setting(
        None,
        f"{PREFIX}WEB_SESSION_KEY_FILE",
        "signs the session cookie (≥ 32 characters; the same on every web process)",
        shown="made once under HOME/keys/",
    )


#: Every section, in the order :func:`load` checks them.
SECTIONS: dict[str, type[Section]] = {
    "common": CommonSettings,
    "registration": RegistrationSettings,
    "pairing": PairingSettings,
    "notify": NotifySettings,
    "reporting": ReportingSettings,
    "web": WebAppSettings,
}


#: A service's own section (each has its own ``database_url`` and ``broker_url``).
ServiceSettings = RegistrationSettings | PairingSettings | NotifySettings | ReportingSettings


def all_keys() -> list[str]:
    """Every key any section reads, every spelling."""
    return [key for section in SECTIONS.values() for key, _ in section.key_fields()]


@dataclass(frozen=True)
class Settings:
    """The resolved configuration of one process: the common settings as attributes and one
    typed section per service. Built from ``env`` (and rebuilt by ``dataclasses.replace``),
    every key checked."""

    env: Mapping[str, str] = field(repr=False)
    home: Path = field(init=False)
    district: str = field(init=False)
    deployment: str = field(init=False)
    campaign: str = field(init=False)
    campaign_start: date = field(init=False)
    campaign_end: date = field(init=False)
    http_host: str = field(init=False)
    http_port: int = field(init=False)
    clock_file: Path | None = field(init=False)
    log_level: str = field(init=False)
    token_private_key_file: Path | None = field(init=False)
    token_public_key_file: Path | None = field(init=False)
    token_ttl: timedelta = field(init=False)
    common: CommonSettings = field(init=False, repr=False)
    registration: RegistrationSettings = field(init=False, repr=False)
    pairing: PairingSettings = field(init=False, repr=False)
    notify: NotifySettings = field(init=False, repr=False)
    reporting: ReportingSettings = field(init=False, repr=False)
    web: WebAppSettings = field(init=False, repr=False)

    def __post_init__(self) -> None:
        common = CommonSettings.read(self.env)
        values: dict[str, object] = {
            "common": common,
            "home": common.home,
            "district": common.district,
            "deployment": common.deployment or common.district,
            "campaign": common.campaign or f"servicemonth-{common.campaign_start.year}",
            "campaign_start": common.campaign_start,
            "campaign_end": common.campaign_end,
            "http_host": common.http_host,
            "http_port": common.http_port,
            "clock_file": common.clock_file,
            "log_level": common.log_level,
            "token_private_key_file": common.token_private_key_file,
            "token_public_key_file": common.token_public_key_file,
            "token_ttl": common.token_ttl,
        }
        for name, section in SECTIONS.items():
            if name != "common":
                values[name] = section.read(self.env)
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def _own(self, service: str) -> ServiceSettings:
        _check_service(service)
        own: ServiceSettings = getattr(self, service)
        return own

    def database_url(self, service: str) -> str:
        """Where ``service`` keeps its tables: its own database, never a shared one."""
        own = self._own(service).database_url
        if own:
            return own
        common = self.common.database_url
        if not common:
            return f"sqlite:///{self.home / f'{service}.db'}"
        return _per_service(make_url(common), service).render_as_string(hide_password=False)

    def broker_url(self, service: str | None = None) -> str:
        """The broker every service shares (``sfs://`` is the embedded filesystem broker)."""
        own = self._own(service).broker_url if service else None
        return own or self.common.broker_url

    def broker_options(self, service: str | None = None) -> dict[str, object]:
        """Kombu transport options matching :meth:`broker_url`."""
        url = self.broker_url(service)
        if url.startswith("sfs://"):
            return {"root": str(self.home / "broker")}
        if url.startswith("memory://"):
            return {}
        return {"confirm_publish": True, "max_retries": 3}

    @property
    def embedded_broker(self) -> bool:
        return self.broker_url().startswith("sfs://")

    @property
    def outbox_dir(self) -> Path:
        return self.home / "outbox"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    def pii_key(self) -> bytes:
        """The 32-byte key that seals ID numbers and phones (AES-GCM) and keys their HMACs.

        From ``SERVICEMONTH_PII_KEY`` (64 hex digits). In the embedded default, a key is
        made once under ``$SERVICEMONTH_HOME/keys/`` (never in the repository).
        """
        if self.common.pii_key is not None:
            return bytes.fromhex(self.common.pii_key.get_secret_value())
        path = self.home / "keys" / "pii.key"
        if not path.exists():
            write_key_once(path, secrets.token_hex(32).encode())
        return bytes.fromhex(path.read_text().strip())

    def report_files_token(self) -> str:
        """What notify shows reporting to read report files (and nothing else).

        From ``SERVICEMONTH_REPORT_FILES_TOKEN``; in the embedded default, a token made once
        under ``$SERVICEMONTH_HOME/keys/`` (one machine: both services find the same one).
        """
        if self.common.report_files_token is not None:
            return self.common.report_files_token.get_secret_value()
        path = self.home / "keys" / "report-files.token"
        if not path.exists():
            write_key_once(path, secrets.token_urlsafe(32).encode())
        return path.read_text().strip()

    def pii_keys(self) -> PiiKeys:
        """Every personal-data key, by version, and the look-up key (see :class:`PiiKeys`).

        Version 1 is ``SERVICEMONTH_PII_KEY`` (or the key made under ``HOME/keys/``);
        ``SERVICEMONTH_PII_KEYS_FILE`` adds later versions (a line ending ``next``: a key
        every process opens with before any seals with it). With a keys file, version 1
        may be left out (retired) once nothing is sealed under it; the look-up key is then
        ``SERVICEMONTH_PII_LOOKUP_KEY``.
        """
        common = self.common
        lookup = common.pii_lookup_key
        upcoming: frozenset[int] = frozenset()
        if common.pii_keys_file is None:
            keys = {1: self.pii_key()}
        else:
            keys, upcoming = _read_keys_file(common.pii_keys_file)
            first = None
            if common.pii_key is not None:
                first = bytes.fromhex(common.pii_key.get_secret_value())
            elif (self.home / "keys" / "pii.key").exists():
                first = self.pii_key()
            if first is not None and keys.setdefault(1, first) != first:
                raise ConfigError(f"{PREFIX}PII_KEYS_FILE: version 1 differs from {PREFIX}PII_KEY")
        if 1 not in keys and lookup is None:
            raise ConfigError(
                f"{PREFIX}PII_LOOKUP_KEY: required once key version 1 is retired "
                "(`servicemonth keys lookup-key` prints it while version 1 is there)"
            )
        if not set(keys) - upcoming:
            raise ConfigError(f"{PREFIX}PII_KEYS_FILE: every key is `next`: none seals")
        return PiiKeys(
            keys=MappingProxyType(keys),
            current=max(set(keys) - upcoming),
            lookup=bytes.fromhex(lookup.get_secret_value()) if lookup else None,
        )


@dataclass(frozen=True)
class PiiKeys:
    """The personal-data keys: ``keys`` by version (every one opens), ``current`` the
    version that seals (the newest not marked ``next``) and ``lookup``, the HMAC key of
    look-ups when it is set apart (None: derived from version 1, as it always was)."""

    keys: Mapping[int, bytes]
    current: int
    lookup: bytes | None


def _read_keys_file(path: Path) -> tuple[dict[int, bytes], frozenset[int]]:
    """``version hex [next]`` lines (``#`` starts a comment) → keys by version, and the
    versions marked ``next`` (they open, they do not seal yet)."""
    where = f"{PREFIX}PII_KEYS_FILE"
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {path} ({exc.strerror})") from None
    keys: dict[int, bytes] = {}
    upcoming: set[int] = set()
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if (
            len(words) not in (2, 3)
            or not re.fullmatch(r"[1-9][0-9]{0,5}", words[0])
            or words[2:] not in ([], ["next"])
        ):
            raise ConfigError(
                f"{where}: line {number} is not `version 64-hex-digit-key` (then maybe `next`)"
            )
        if words[2:]:
            upcoming.add(int(words[0]))
        try:
            key = bytes.fromhex(_pii_key(words[1]))
        except ValueError:
            raise ConfigError(f"{where}: line {number}: the key is not 64 hex digits") from None
        if int(words[0]) in keys:
            raise ConfigError(f"{where}: version {words[0]} is listed twice")
        keys[int(words[0])] = key
    if not keys:
        raise ConfigError(f"{where}: {path} lists no key")
    return keys, frozenset(upcoming)


def write_key_once(path: Path, data: bytes) -> None:
    """Write a key made on this machine to ``path`` (mode 0600, its folder 0700) unless
    another process got there first: the first writer wins, every process reads its key."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()


def private_files(home: Path | None = None) -> None:
    """From now on, every file and folder this process (and its children) creates is its
    user's only; an existing ``home`` loses any group/other access it had, which also
    closes what an older version left readable inside it.

    Every entrypoint calls this first (the ``servicemonth`` command, and through it the
    consumers, workers, scheduler and HTTP servers it starts).
    """
    os.umask(PRIVATE_UMASK)
    if home is None:
        return
    try:
        found = home.stat()
    except FileNotFoundError:
        return
    if found.st_uid == os.getuid() and found.st_mode & PRIVATE_UMASK:
        home.chmod(stat.S_IMODE(found.st_mode) & ~PRIVATE_UMASK)


# --- the environment of this process and its children ------------------------------------


def export(key: str, value: str, *, replace: bool = True) -> None:
    """Put ``key`` in this process's environment, which the processes it starts inherit
    (with ``replace=False`` only when it has none). Settings already read stay as read."""
    if replace:
        os.environ[key] = value
    else:
        os.environ.setdefault(key, value)


def child_environment(changes: Mapping[str, str | None]) -> dict[str, str]:
    """This process's environment with ``changes`` (``None`` removes a key), for a child."""
    env = dict(os.environ)
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def _check_service(service: str) -> None:
    if service not in SERVICES:
        raise ConfigError(f"unknown service {service!r} (one of: {', '.join(SERVICES)})")


def _per_service(url: URL, service: str) -> URL:
    base = url.database or "servicemonth"
    if url.get_backend_name() == "sqlite":
        path = Path(base)
        return url.set(database=str(path.with_name(f"{path.stem}_{service}{path.suffix}")))
    return url.set(database=f"{base}_{service}")


def load(env: Mapping[str, str] | None = None) -> Settings:
    """Read and check every setting of every service (this process's environment unless
    ``env`` is given); raise :class:`ConfigError` naming the bad key."""
    return Settings(dict(os.environ if env is None else env))


@cache
def settings() -> Settings:
    """The process-wide settings, read once (tests call ``settings.cache_clear()``)."""
    return load()
