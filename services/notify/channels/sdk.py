"""What the two SMS SDK adapters share: endpoint parsing, error classes, quiet SDK logs."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from services.notify.channels.base import (
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
)

#: The SDKs and urllib3 log whole requests (numbers in them) at DEBUG: never below INFO.
SDK_LOGGERS = ("tencentcloud_sdk_common", "darabonba-core", "alibabacloud-tea", "urllib3")


def quiet_sdk_loggers() -> None:
    for name in SDK_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.INFO:
            logger.setLevel(logging.INFO)


def split_endpoint(endpoint: str) -> tuple[str, str]:
    """``http://127.0.0.1:8080`` → (``http``, ``127.0.0.1:8080``); a bare host means https."""
    scheme, sep, host = endpoint.partition("://")
    if not sep:
        return "https", endpoint.rstrip("/")
    if scheme not in ("http", "https"):
        raise ValueError(f"endpoint {endpoint!r}: use https://host or a bare host name")
    return scheme, host.rstrip("/")


def classify(
    provider: str,
    code: str,
    message: str,
    *,
    transient_codes: Iterable[str] = (),
    transient_prefixes: Iterable[str] = (),
) -> ProviderError:
    """The error for a provider's refusal ``code``: transient when listed, else permanent."""
    if code in set(transient_codes) or any(code.startswith(p) for p in transient_prefixes):
        return TransientProviderError(code, message, provider=provider)
    return PermanentProviderError(code, message, provider=provider)
