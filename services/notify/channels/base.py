"""What every channel shares: the messages handed over, the adapter protocols, the errors.

A provider error says whether trying again can help (:class:`TransientProviderError`:
timeouts, throttling, the provider's own faults) or not (:class:`PermanentProviderError`:
a bad number, an unapproved template). Error texts pass through
:func:`shared.pii.redact` so no phone number, ID number or e-mail address reaches a log line
or a history row in clear.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, Protocol

from shared.pii import national_mobile, redact


class ProviderError(Exception):
    """A channel refused or failed to take a message; ``code`` is the provider's own code."""

    retryable: bool = False

    def __init__(self, code: str, message: str = "", *, provider: str = "") -> None:
        self.code = code
        self.provider = provider
        self.detail = redact(message)[:500]
        text = f"{provider}: {code}" if provider else code
        super().__init__(f"{text}: {self.detail}" if self.detail else text)


class TransientProviderError(ProviderError):
    """Worth retrying later or through another provider: timeouts, throttling, 5xx."""

    retryable = True


class PermanentProviderError(ProviderError):
    """Retrying cannot help: bad number, unapproved template or signature, bad params."""

    retryable = False


@dataclass(frozen=True)
class Limit:
    """A documented per-recipient sending limit of a provider (enforced before calling it).

    ``per`` says what is counted together: each number; each number and template; each
    number and identical content.
    """

    per: Literal["number", "number+template", "number+content"]
    window: timedelta
    count: int


@dataclass(frozen=True)
class OutgoingSms:
    """One SMS to hand to a provider.

    ``out_id`` is our message id: providers echo it (Aliyun OutId, Tencent SessionContext),
    so a send cut short can be found again instead of repeated. ``phone`` is in clear only
    for the provider call; everything else uses ``phone_masked``. ``params`` are the approved
    template's parameters (rendering.RenderedSms.params). Each real provider sends the code
    approved for it for ``kind`` (its ``codes``), so the same OutgoingSms can fail over
    unchanged; ``template_code`` is what the file channel and the history record.
    """

    out_id: str
    phone: str
    phone_masked: str
    kind: str
    template_code: str
    params: dict[str, str]
    text: str
    segments: int


class SmsProvider(Protocol):
    """An SMS gateway: Aliyun, Tencent Cloud, the file outbox, or a test fake.

    ``settle_after`` is how long after a send the provider's look-up (``find``) can be
    trusted to list it: until then "not found" may only mean "not listed yet", so a message
    whose attempt ended ambiguously (a timeout) is not sent again before that.
    """

    name: str
    limits: tuple[Limit, ...]
    settle_after: timedelta

    def send(self, sms: OutgoingSms) -> str:
        """Hand ``sms`` over; return the provider's reference. Raises ProviderError."""
        ...

    def find(self, sms: OutgoingSms, since: datetime) -> str | None:
        """The reference of an accepted send of ``sms.out_id`` since ``since``, if any.

        Only ``out_id`` and ``phone`` of ``sms`` are used. Raises ProviderError when the
        provider cannot be asked (the caller tries again later, never sends meanwhile).
        """
        ...


@dataclass(frozen=True)
class Attachment:
    """A file sent with an e-mail; with ``inline_cid`` it is an image the HTML shows
    (``<img src="cid:...">``)."""

    filename: str
    media_type: str
    data: bytes = field(repr=False)
    inline_cid: str | None = None


@dataclass(frozen=True)
class OutgoingEmail:
    """One e-mail to send; ``to`` in clear only for the SMTP call, ``to_masked`` elsewhere."""

    out_id: str
    to: str
    to_masked: str
    kind: str
    subject: str
    text: str
    html: str | None = None
    attachments: list[Attachment] = field(default_factory=list)


class EmailChannel(Protocol):
    """Where e-mail goes: SMTP, the file outbox, or a test fake."""

    name: str

    def send(self, mail: OutgoingEmail) -> str:
        """Send ``mail``; return its Message-ID. Raises ProviderError."""
        ...

    def find(self, mail: OutgoingEmail) -> str | None:
        """The Message-ID of an earlier send of ``mail.out_id``, when the channel can tell."""
        ...


def e164(phone: str) -> str:
    """``13812348000`` → ``+8613812348000`` (what Tencent takes)."""
    number = national_mobile(phone)
    return number if number.startswith("+") else f"+86{number}"
