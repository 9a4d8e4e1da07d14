"""Every setting of servicemonth, read in one place.

Keys come from the environment. A service-prefixed key wins over the plain one
(``SERVICEMONTH_PAIRING_DATABASE_URL`` over ``SERVICEMONTH_DATABASE_URL``); with nothing
set, the embedded default applies: SQLite files and the filesystem broker under
``SERVICEMONTH_HOME`` (``./var``).

The plain ``SERVICEMONTH_DATABASE_URL`` names a server and a base name; each service gets
its own database on it, ``<base>_<service>``, so four services never share tables.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

PREFIX = "SERVICEMONTH_"
SERVICES = ("registration", "pairing", "notify", "reporting")
CITY = "410300"
CAMPAIGN_TZ = ZoneInfo("Asia/Shanghai")
EMBEDDED_BROKER = "sfs://"
#: What the processes of servicemonth create under SERVICEMONTH_HOME (SQLite databases, the
#: broker's folders, the outbox, reports, keys) holds personal data and secrets: readable
#: and writable by the service's user only.
PRIVATE_UMASK = 0o077


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the key."""


@dataclass(frozen=True)
class Settings:
    """The resolved configuration of one process."""

    env: Mapping[str, str] = field(repr=False)
    home: Path
    district: str
    deployment: str
    campaign: str
    campaign_start: date
    campaign_end: date
    http_host: str
    http_port: int
    clock_file: Path | None
    log_level: str

    def get(self, key: str, service: str | None = None) -> str | None:
        """The raw value of ``key``, the service-prefixed spelling first."""
        if service is not None:
            value = self.env.get(f"{PREFIX}{service.upper()}_{key}")
            if value:
                return value
        return self.env.get(f"{PREFIX}{key}") or None

    def database_url(self, service: str) -> str:
        """Where ``service`` keeps its tables: its own database, never a shared one."""
        _check_service(service)
        own = self.env.get(f"{PREFIX}{service.upper()}_DATABASE_URL")
        if own:
            return _valid_db_url(own, f"{PREFIX}{service.upper()}_DATABASE_URL")
        common = self.env.get(f"{PREFIX}DATABASE_URL")
        if not common:
            return f"sqlite:///{self.home / f'{service}.db'}"
        url = make_url(_valid_db_url(common, f"{PREFIX}DATABASE_URL"))
        return _per_service(url, service).render_as_string(hide_password=False)

    def broker_url(self, service: str | None = None) -> str:
        """The broker every service shares (``sfs://`` is the embedded filesystem broker)."""
        url = self.get("BROKER_URL", service) or EMBEDDED_BROKER
        if not re.match(r"^(sfs|amqp|pyamqp|amqps|memory)://", url):
            raise ConfigError(
                f"{PREFIX}BROKER_URL: {url.split('://')[0]!r} is not a supported broker "
                "(use amqp://user:pass@host:5672/vhost, or leave it unset for the embedded one)"
            )
        return url

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
        raw = self.get("PII_KEY")
        if raw:
            try:
                key = bytes.fromhex(raw)
            except ValueError:
                key = b""
            if len(key) != 32:
                raise ConfigError(f"{PREFIX}PII_KEY: expected 64 hexadecimal digits (32 bytes)")
            return key
        path = self.home / "keys" / "pii.key"
        if not path.exists():
            write_key_once(path, secrets.token_hex(32).encode())
        return bytes.fromhex(path.read_text().strip())


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


def _check_service(service: str) -> None:
    if service not in SERVICES:
        raise ConfigError(f"unknown service {service!r} (one of: {', '.join(SERVICES)})")


def _valid_db_url(raw: str, key: str) -> str:
    try:
        url = make_url(raw)
    except ArgumentError:
        raise ConfigError(f"{key}: not a database URL") from None
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"{key}: {url.get_backend_name()!r} is not supported (sqlite, postgresql)"
        )
    if url.get_backend_name() == "postgresql" and url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


def _per_service(url: URL, service: str) -> URL:
    base = url.database or "servicemonth"
    if url.get_backend_name() == "sqlite":
        path = Path(base)
        return url.set(database=str(path.with_name(f"{path.stem}_{service}{path.suffix}")))
    return url.set(database=f"{base}_{service}")


def _date(env: Mapping[str, str], key: str, default: str) -> date:
    raw = env.get(PREFIX + key) or default
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ConfigError(f"{PREFIX}{key}: {raw!r} is not a date (YYYY-MM-DD)") from None


def load(env: Mapping[str, str] | None = None) -> Settings:
    """Read and check the settings; raise :class:`ConfigError` naming the bad key."""
    env = dict(os.environ if env is None else env)
    home = Path(env.get(PREFIX + "HOME") or "var").resolve()
    district = env.get(PREFIX + "DISTRICT") or CITY
    if not re.fullmatch(r"41\d{4}", district):
        raise ConfigError(f"{PREFIX}DISTRICT: {district!r} is not a county-level code like 410303")
    deployment = env.get(PREFIX + "DEPLOYMENT") or district
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", deployment):
        raise ConfigError(f"{PREFIX}DEPLOYMENT: use letters, digits, '-' or '_' (≤ 40)")
    start = _date(env, "CAMPAIGN_START", "2016-06-26")
    end = _date(env, "CAMPAIGN_END", "2016-07-31")
    if end < start:
        raise ConfigError(f"{PREFIX}CAMPAIGN_END: {end} is before the start {start}")
    port_raw = env.get(PREFIX + "HTTP_PORT") or "8000"
    if not re.fullmatch(r"[0-9]{1,5}", port_raw) or not 0 < int(port_raw) < 65536:
        raise ConfigError(f"{PREFIX}HTTP_PORT: {port_raw!r} is not a TCP port")
    clock_file = env.get(PREFIX + "CLOCK_FILE")
    settings = Settings(
        env=env,
        home=home,
        district=district,
        deployment=deployment,
        campaign=env.get(PREFIX + "CAMPAIGN") or f"servicemonth-{start.year}",
        campaign_start=start,
        campaign_end=end,
        http_host=env.get(PREFIX + "HTTP_HOST") or "127.0.0.1",
        http_port=int(port_raw),
        clock_file=Path(clock_file).resolve() if clock_file else None,
        log_level=(env.get(PREFIX + "LOG_LEVEL") or "INFO").upper(),
    )
    if not settings.embedded_broker and not settings.get("PII_KEY"):
        # Every process of a real deployment must seal and open with the same key.
        raise ConfigError(f"{PREFIX}PII_KEY: required with a production broker (64 hex digits)")
    if settings.get("PII_KEY"):
        settings.pii_key()  # fail early on a malformed key
    for service in SERVICES:
        settings.database_url(service)
    return settings


@cache
def settings() -> Settings:
    """The process-wide settings, read once (tests call ``settings.cache_clear()``)."""
    return load()
