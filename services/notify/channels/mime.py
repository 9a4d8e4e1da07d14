"""Turning an :class:`OutgoingEmail` into an RFC 5322 message.

The structure is the one mail clients expect: ``multipart/mixed`` holding the body and the
attachments; the body ``multipart/alternative`` (plain text, then HTML); the HTML
``multipart/related`` with its inline images (``cid:``) when it has any.

The Message-ID is derived from the out-id, not drawn at random, so a retry of the same
message carries the same Message-ID and a receiving system can drop the duplicate.
"""

from __future__ import annotations

import re
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

from services.notify.channels.base import OutgoingEmail

DEFAULT_DOMAIN = "servicemonth.invalid"
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_out_id(out_id: str) -> str:
    """An out-id is used in file names and Message-IDs: letters, digits, ``.``, ``_``, ``-``."""
    if not _SAFE_ID.fullmatch(out_id):
        raise ValueError(f"out_id {out_id!r}: use letters, digits, '.', '_' or '-' (≤ 128)")
    return out_id


def message_id(out_id: str, sender: str) -> str:
    """``<out-id.notify@sender-domain>``: the same for every attempt of one message."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or DEFAULT_DOMAIN
    return f"<{check_out_id(out_id)}.notify@{domain}>"


def build_message(mail: OutgoingEmail, sender: str, to: str, now: datetime) -> EmailMessage:
    """The full message from ``sender`` to ``to`` (the clear or the masked address)."""
    msg = EmailMessage()
    msg["Subject"] = mail.subject
    msg["From"] = sender
    msg["To"] = _address(to)
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id(mail.out_id, sender)
    msg["X-Servicemonth-Kind"] = mail.kind
    msg.set_content(mail.text)
    inline = [a for a in mail.attachments if a.inline_cid and mail.html is not None]
    if mail.html is not None:
        msg.add_alternative(mail.html, subtype="html")
        html_part = next(p for p in msg.iter_parts() if p.get_content_type() == "text/html")
        for image in inline:
            maintype, subtype = _split(image.media_type)
            html_part.add_related(
                image.data,
                maintype=maintype,
                subtype=subtype,
                cid=f"<{image.inline_cid}>",
                filename=image.filename,
                disposition="inline",
            )
    for attachment in mail.attachments:
        if attachment in inline:
            continue
        maintype, subtype = _split(attachment.media_type)
        msg.add_attachment(
            attachment.data, maintype=maintype, subtype=subtype, filename=attachment.filename
        )
    return msg


def _split(media_type: str) -> tuple[str, str]:
    maintype, _, subtype = media_type.partition("/")
    return (maintype, subtype) if subtype else ("application", "octet-stream")


def _address(to: str) -> str | Address:
    """A masked address (``z***@example.com``) is not valid syntax; send it as a display name."""
    if "*" in to:
        return Address(display_name=to, username="undisclosed-recipient", domain=DEFAULT_DOMAIN)
    return to
