"""Personal data: sealed at rest and in transit, keyed hashes for look-ups, masks for display.

ID numbers and mobiles are never stored or sent in clear (PIPL): they are sealed with
AES-GCM, found again through an HMAC of the normalised value, and shown masked. The key has
versions (a sealed value names its own), so it can be rotated; the HMAC's key does not
change with them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

import phonenumbers
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE = 12
#: A sealed value under key version N ≥ 2 starts ``v<N>.``; one with no such header was
#: sealed under version 1 (every value sealed before keys had versions). A ``.`` never
#: occurs in urlsafe base64, so the two forms cannot be confused.
_VERSIONED = re.compile(r"v([0-9]{1,6})\.")
FIRST_VERSION = 1


def key_version(token: str) -> int:
    """The version of the key ``token`` was sealed under (1 when it carries none)."""
    found = _VERSIONED.match(token)
    return int(found[1]) if found else FIRST_VERSION


def lookup_key(key: bytes) -> bytes:
    """The HMAC key of look-ups derived from a sealing key (how version 1 has always made
    it): it finds values again but opens nothing."""
    return hashlib.sha256(b"hmac" + key).digest()


class Sealer:
    """Seals and opens values; ``digest`` is the look-up hash.

    ``key`` seals (as ``version``); the ``others``, by version, only open what was sealed
    under them: older keys while values are re-sealed, and a newer one every process must
    open with before any seals with it. The look-up key stays the same across versions:
    ``lookup`` when given, else derived from the version-1 key, so a hash computed before
    a rotation still finds the value after it.
    """

    def __init__(
        self,
        key: bytes,
        *,
        version: int = FIRST_VERSION,
        others: Mapping[int, bytes] | None = None,
        lookup: bytes | None = None,
    ) -> None:
        keys = {**(others or {}), version: key}
        if any(len(k) != 32 for k in keys.values()):
            raise ValueError("the personal-data key must be 32 bytes")
        if any(v < FIRST_VERSION for v in keys):
            raise ValueError("key versions start at 1")
        if lookup is None:
            if FIRST_VERSION not in keys:
                raise ValueError("without the version-1 key, the look-up key must be given")
            lookup = lookup_key(keys[FIRST_VERSION])
        if len(lookup) != 32:
            raise ValueError("the look-up key must be 32 bytes")
        self.version = version
        self._aeads = {v: AESGCM(hashlib.sha256(b"seal" + k).digest()) for v, k in keys.items()}
        self._mac_key = lookup

    @classmethod
    def from_keys(
        cls, keys: Mapping[int, bytes], lookup: bytes | None = None, current: int | None = None
    ) -> Sealer:
        """A sealer over ``keys`` by version: ``current`` (default the newest) seals, every
        one opens."""
        current = max(keys) if current is None else current
        others = {v: k for v, k in keys.items() if v != current}
        return cls(keys[current], version=current, others=others, lookup=lookup)

    def seal(self, value: str, context: str) -> str:
        nonce = os.urandom(_NONCE)
        sealed = self._aeads[self.version].encrypt(nonce, value.encode(), context.encode())
        body = base64.urlsafe_b64encode(nonce + sealed).decode()
        return body if self.version == FIRST_VERSION else f"v{self.version}.{body}"

    def open(self, token: str, context: str) -> str:
        found = _VERSIONED.match(token)
        version = int(found[1]) if found else FIRST_VERSION
        aead = self._aeads.get(version)
        if aead is None:
            raise UnknownKeyVersion(version)
        raw = base64.urlsafe_b64decode(token[found.end() if found else 0 :].encode())
        return aead.decrypt(raw[:_NONCE], raw[_NONCE:], context.encode()).decode()

    def reseal(self, token: str, context: str) -> str | None:
        """``token`` sealed again under the current key, or None when it already is."""
        if key_version(token) == self.version:
            return None
        return self.seal(self.open(token, context), context)

    def seal_json(self, value: dict[str, Any], context: str) -> str:
        return self.seal(json.dumps(value, ensure_ascii=False), context)

    def open_json(self, token: str, context: str) -> dict[str, Any]:
        opened = json.loads(self.open(token, context))
        if not isinstance(opened, dict):
            raise ValueError("sealed value is not an object")
        return opened

    def digest(self, value: str) -> str:
        return hmac.new(self._mac_key, value.encode(), hashlib.sha256).hexdigest()


class UnknownKeyVersion(ValueError):
    """A value was sealed under a key version this process does not have."""

    def __init__(self, version: int) -> None:
        super().__init__(
            f"sealed under personal-data key version {version}, which is not configured"
        )
        self.version = version


def mask_phone(phone: str) -> str:
    """``13812348000`` → ``138****8000``."""
    return phone[:3] + "*" * max(len(phone) - 7, 0) + phone[-4:] if len(phone) > 7 else "****"


def mask_id_number(id_number: str) -> str:
    """``410302195001010015`` → ``410***********0015`` (region prefix and last four kept)."""
    return id_number[:3] + "*" * (len(id_number) - 7) + id_number[-4:]


def mask_name(name: str) -> str:
    """``张三`` → ``张*`` (residents and members shown to others)."""
    return name[:1] + "*" * (len(name) - 1) if name else name


def mask_email(address: str) -> str:
    """``zhangsan@example.com`` → ``z***@example.com``."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


_ID = re.compile(r"(?<![0-9])(\d{17}[\dXx]|\d{15})(?![0-9])")
_MOBILE = re.compile(r"(?<![0-9])(?:\+?86[\s-]?)?(1[3-9]\d[\s-]?\d{4}[\s-]?\d{4})(?![0-9])")
_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")


def redact(text: str) -> str:
    """``text`` with every ID number, mainland mobile and e-mail address in it masked
    (free text people typed — a wish, a note, an error message — before it is shown)."""
    text = _ID.sub(lambda m: mask_id_number(m.group(1)), text)
    text = _MOBILE.sub(lambda m: mask_phone(re.sub(r"[\s-]", "", m.group(1))), text)
    return _EMAIL.sub(lambda m: mask_email(m.group(0)), text)


def national_mobile(raw: str) -> str:
    """``+86 138-1234-8000`` → ``13812348000``: full-width digits folded, the country
    prefix (+86, 0086, 86), spaces, dashes (any kind), dots and brackets dropped. No check:
    see :func:`mobile`."""
    value = re.sub(r"[\s\-()\u2010-\u2015\u2212.]", "", unicodedata.normalize("NFKC", raw))
    return re.sub(r"^(\+86|0086|86)(?=1\d{10}$)", "", value)


def mobile(raw: str) -> str:
    """An 11-digit mainland mobile with an allocated prefix; ValueError says what is wrong."""
    value = national_mobile(raw)
    if not re.fullmatch(r"1[3-9][0-9]{9}", value):
        raise ValueError("must be an 11-digit mainland mobile number starting 13–19")
    try:  # parsing strips a carrier prefix (179xx…), and what is left may not parse
        valid = phonenumbers.is_valid_number(phonenumbers.parse(value, "CN"))
    except phonenumbers.NumberParseException:
        valid = False
    if not valid:
        raise ValueError(f"{value[:3]} is not an allocated mobile prefix")
    return value


def error_line(exc: BaseException) -> str:
    """``Type: first line of the message`` — what may be logged or kept of an error: the
    rest can hold SQL parameters (SQLAlchemy appends them) and with them personal data."""
    text = str(exc)
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"
