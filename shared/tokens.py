"""Signed access tokens: registration signs, every service checks on its own.

A token is a JWT signed with Ed25519 (PyJWT with ``cryptography``). Registration holds the
private key; the other services need only the public one, so no service calls another to
check a token and checking one never writes. Claims:

- ``sub``, who: ``member:UUID``, ``staff:UUID``, ``phone:HASH`` (a verified number that may
  only register itself) or ``token:JTI`` (an operator's token from the CLI);
- ``role`` and ``scope``, what the token may do (see :mod:`shared.auth`);
- ``jti``, this token, for sign-out and ``token revoke``;
- ``iat`` and ``exp``, issued and expires (wall-clock time: a session lives in real time);
- ``ph`` (registrants only), the keyed hash of the verified phone.

Keys: ``SERVICEMONTH_TOKEN_PRIVATE_KEY_FILE`` (registration) and
``SERVICEMONTH_TOKEN_PUBLIC_KEY_FILE`` (every service), PEM files. When neither is set, a
key pair is made once under ``$SERVICEMONTH_HOME/keys/`` (one machine: the embedded default,
or every service of a deployment sharing that folder).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from shared.config import ConfigError, Settings, write_key_once

ALGORITHM = "EdDSA"
AUDIENCE = "servicemonth"
ISSUER = "servicemonth-registration"
_REQUIRED = ["sub", "role", "scope", "jti", "iat", "exp"]


class InvalidToken(Exception):
    """The token is not one of ours, was altered, or has expired; the message says which."""


@dataclass(frozen=True)
class Claims:
    """What a checked token says."""

    subject: str
    role: str
    scope: str
    jti: str
    issued_at: datetime
    expires_at: datetime
    phone_hash: str | None = None


def _default_pair(home: Path) -> tuple[Path, Path]:
    private, public = home / "keys" / "token-ed25519.pem", home / "keys" / "token-ed25519.pub"
    if not private.exists():
        key = Ed25519PrivateKey.generate()
        write_key_once(
            private,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
    if not public.exists():
        loaded = serialization.load_pem_private_key(private.read_bytes(), None)
        write_key_once(
            public,
            loaded.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        )
    return private, public


def _key_files(settings: Settings) -> tuple[Path | None, Path]:
    private = settings.token_private_key_file
    public = settings.token_public_key_file
    if not private and not public:
        return _default_pair(settings.home)
    if not public:  # load() refuses this already; the check narrows the type
        raise ConfigError("SERVICEMONTH_TOKEN_PUBLIC_KEY_FILE: required with the private key file")
    return private, public


@cache
def _load_public(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"SERVICEMONTH_TOKEN_PUBLIC_KEY_FILE: {path}: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"SERVICEMONTH_TOKEN_PUBLIC_KEY_FILE: {path} is not an Ed25519 key")
    return key


@cache
def _load_private(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), None)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"SERVICEMONTH_TOKEN_PRIVATE_KEY_FILE: {path}: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"SERVICEMONTH_TOKEN_PRIVATE_KEY_FILE: {path} is not an Ed25519 key")
    return key


def session_ttl(settings: Settings) -> timedelta:
    """How long a signed-in session lasts (``SERVICEMONTH_TOKEN_TTL_HOURS``, default 12)."""
    return settings.token_ttl


def verify(settings: Settings, token: str) -> Claims:
    """The claims of ``token`` if our key signed it and it has not expired."""
    _, public = _key_files(settings)
    try:
        raw: dict[str, Any] = jwt.decode(
            token,
            _load_public(public),
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": _REQUIRED},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("the token has expired; sign in again") from None
    except jwt.InvalidTokenError:
        raise InvalidToken("not a valid token") from None
    if not all(isinstance(raw[k], str) for k in ("sub", "role", "scope", "jti")):
        raise InvalidToken("not a valid token")
    return Claims(
        subject=raw["sub"],
        role=raw["role"],
        scope=raw["scope"],
        jti=raw["jti"],
        issued_at=datetime.fromtimestamp(raw["iat"], UTC),
        expires_at=datetime.fromtimestamp(raw["exp"], UTC),
        phone_hash=raw.get("ph") if isinstance(raw.get("ph"), str) else None,
    )


def sign(
    settings: Settings,
    *,
    subject: str,
    role: str,
    scope: str,
    ttl: timedelta,
    phone_hash: str | None = None,
    now: datetime | None = None,
) -> tuple[str, Claims]:
    """A new signed token and its claims (registration only: it needs the private key)."""
    private, _ = _key_files(settings)
    if private is None:
        raise ConfigError("SERVICEMONTH_TOKEN_PRIVATE_KEY_FILE: only registration signs tokens")
    issued = (now or datetime.now(UTC)).replace(microsecond=0)
    claims = Claims(
        subject=subject,
        role=role,
        scope=scope,
        jti=str(uuid.uuid4()),
        issued_at=issued,
        expires_at=issued + ttl,
        phone_hash=phone_hash,
    )
    payload: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": subject,
        "role": role,
        "scope": scope,
        "jti": claims.jti,
        "iat": issued,
        "exp": claims.expires_at,
    }
    if phone_hash:
        payload["ph"] = phone_hash
    return jwt.encode(payload, _load_private(private), algorithm=ALGORITHM), claims
