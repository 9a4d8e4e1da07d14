"""The web app's settings: ``settings.web`` (checked at start like every other process's)
and the session key read from its file."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

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


def _session_key(settings: Settings) -> str:
    given = settings.web.session_key_file
    path = given or settings.home / "keys" / "web-session.key"
    if not given and not path.exists():
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
    ``$SERVICEMONTH_HOME/keys/``). The URLs are checked by :func:`shared.config.load`;
    the key file is read here, by the process that signs cookies with it."""
    default_api = api_url or f"http://127.0.0.1:{settings.http_port}"
    api = settings.web.api_url or default_api.rstrip("/")
    public = settings.web.public_url or f"http://127.0.0.1:{port or settings.http_port}"
    return WebSettings(api_url=api, public_url=public, session_key=_session_key(settings))
