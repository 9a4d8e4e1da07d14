"""The web app's settings, read from the environment like every other process's."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from shared.config import PREFIX, ConfigError, Settings, write_key_once


@dataclass(frozen=True)
class WebSettings:
    #: Where the services' HTTP API answers (``/api/v1/...`` below it).
    api_url: str
    #: The address people open: QR codes and printed links point here.
    public_url: str
    #: Signs the session cookie (itsdangerous); the same on every web process.
    session_key: str

    @property
    def secure(self) -> bool:
        """Behind TLS the session cookie is ``Secure``."""
        return self.public_url.startswith("https://")


def _url(raw: str, key: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{PREFIX}{key}: {raw!r} is not an http(s) URL")
    return raw.rstrip("/")


def _session_key(settings: Settings) -> str:
    path_raw = settings.get("WEB_SESSION_KEY_FILE")
    path = Path(path_raw) if path_raw else settings.home / "keys" / "web-session.key"
    if not path_raw and not path.exists():
        write_key_once(path, secrets.token_hex(32).encode())
    try:
        key = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"{PREFIX}WEB_SESSION_KEY_FILE: {path}: {exc}") from None
    if len(key) < 32:
        raise ConfigError(f"{PREFIX}WEB_SESSION_KEY_FILE: {path} holds fewer than 32 characters")
    return key


def load(settings: Settings, api_url: str | None = None, port: int | None = None) -> WebSettings:
    """``SERVICEMONTH_API_URL`` (default: ``api_url``, else this machine's
    ``SERVICEMONTH_HTTP_PORT``), ``SERVICEMONTH_PUBLIC_URL`` (default: where this process
    listens, ``port``), ``SERVICEMONTH_WEB_SESSION_KEY_FILE`` (default: made once under
    ``$SERVICEMONTH_HOME/keys/``)."""
    default_api = api_url or f"http://127.0.0.1:{settings.http_port}"
    api = _url(settings.get("API_URL") or default_api, "API_URL")
    here = f"http://127.0.0.1:{port or settings.http_port}"
    public = _url(settings.get("PUBLIC_URL") or here, "PUBLIC_URL")
    return WebSettings(api_url=api, public_url=public, session_key=_session_key(settings))
