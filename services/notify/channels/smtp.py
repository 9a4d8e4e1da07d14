"""E-mail over SMTP (``smtplib``).

SMTP cannot be asked afterwards whether a message went through, so :meth:`find` always
answers ``None``: if a worker dies after the server accepted the DATA and before we
recorded it, the retry sends the message again. The Message-ID is derived from the out-id
(see :mod:`.mime`), so the copy is recognisably the same message and receiving systems
that deduplicate by Message-ID drop it. 4xx replies and broken connections are transient;
5xx replies are permanent.
"""

from __future__ import annotations

import smtplib
import ssl

from services.notify.channels.base import (
    OutgoingEmail,
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
)
from services.notify.channels.mime import build_message
from shared.clock import Clock, SystemClock


class SmtpEmailChannel:
    """Sends through one SMTP server (STARTTLS on request, implicit TLS on port 465)."""

    name = "smtp"

    def __init__(
        self,
        host: str,
        port: int = 25,
        username: str | None = None,
        password: str | None = None,
        sender: str = "",
        starttls: bool = False,
        *,
        timeout: float = 30.0,
        clock: Clock | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.sender = sender
        self.starttls = starttls
        self.timeout = timeout
        self.clock = clock or SystemClock()

    def send(self, mail: OutgoingEmail) -> str:
        msg = build_message(mail, self.sender, mail.to, self.clock.now())
        try:
            with self._connect() as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(msg, to_addrs=[mail.to])
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()), (550, b""))
            raise _by_reply(code, reply) from None
        except smtplib.SMTPResponseException as exc:
            raise _by_reply(exc.smtp_code, exc.smtp_error) from None
        except smtplib.SMTPNotSupportedError as exc:  # e.g. no STARTTLS: a setup problem
            raise PermanentProviderError("NotSupported", str(exc), provider=self.name) from None
        except (smtplib.SMTPException, OSError) as exc:  # disconnects, timeouts, refusals
            raise TransientProviderError(
                "ConnectionError", type(exc).__name__, provider=self.name
            ) from None
        return str(msg["Message-ID"])

    def find(self, mail: OutgoingEmail) -> str | None:
        return None  # SMTP cannot be queried; see the module docstring

    def _connect(self) -> smtplib.SMTP:
        if self.port == 465:
            return smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=ssl.create_default_context()
            )
        return smtplib.SMTP(self.host, self.port, timeout=self.timeout)


def _by_reply(code: int, reply: bytes | str) -> ProviderError:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    kind = TransientProviderError if 400 <= code < 500 else PermanentProviderError
    if code < 400:  # an unexpected positive reply where an error was raised: try again
        kind = TransientProviderError
    return kind(str(code), text, provider="smtp")
