"""Personal data: sealed at rest and in transit, keyed hashes for look-ups, masks for display.

ID numbers and mobiles are never stored or sent in clear (PIPL): they are sealed with
AES-GCM, found again through an HMAC of the normalised value, and shown masked.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import unicodedata
from typing import Any

import phonenumbers
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE = 12


class Sealer:
    """Seals and opens values with one 32-byte key; ``digest`` is the look-up hash."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the personal-data key must be 32 bytes")
        self._aead = AESGCM(hashlib.sha256(b"seal" + key).digest())
        self._mac_key = hashlib.sha256(b"hmac" + key).digest()

    def seal(self, value: str, context: str) -> str:
        nonce = os.urandom(_NONCE)
        sealed = self._aead.encrypt(nonce, value.encode(), context.encode())
        return base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, token: str, context: str) -> str:
        raw = base64.urlsafe_b64decode(token.encode())
        return self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], context.encode()).decode()

    def seal_json(self, value: dict[str, Any], context: str) -> str:
        return self.seal(json.dumps(value, ensure_ascii=False), context)

    def open_json(self, token: str, context: str) -> dict[str, Any]:
        opened = json.loads(self.open(token, context))
        if not isinstance(opened, dict):
            raise ValueError("sealed value is not an object")
        return opened

    def digest(self, value: str) -> str:
        return hmac.new(self._mac_key, value.encode(), hashlib.sha256).hexdigest()


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
    if not phonenumbers.is_valid_number(phonenumbers.parse(value, "CN")):
        raise ValueError(f"{value[:3]} is not an allocated mobile prefix")
    return value


def error_line(exc: BaseException) -> str:
    """``Type: first line of the message`` — what may be logged or kept of an error: the
    rest can hold SQL parameters (SQLAlchemy appends them) and with them personal data."""
    text = str(exc)
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"
