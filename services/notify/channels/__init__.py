"""Where messages leave the system: one adapter per channel, a recording fake for tests.

SMS go through an :class:`SmsProvider` (Aliyun, Tencent Cloud, or the ``file`` outbox of the
embedded default); e-mail through an :class:`EmailChannel` (SMTP, or ``.eml`` files in the
outbox). Every message carries our out-id so that a send cut short can be found again
(``find``) instead of repeated. Errors say whether a retry can help. ``sms_providers`` and
``email_channel`` build what the settings ask for.
"""

from services.notify.channels.aliyun import AliyunSms
from services.notify.channels.base import (
    Attachment,
    EmailChannel,
    Limit,
    OutgoingEmail,
    OutgoingSms,
    PermanentProviderError,
    ProviderError,
    SmsProvider,
    TransientProviderError,
    e164,
)
from services.notify.channels.factory import email_channel, sms_providers
from services.notify.channels.fakes import RecordingEmailChannel, RecordingSmsProvider
from services.notify.channels.files import FileEmailChannel, FileSmsChannel
from services.notify.channels.mime import build_message, message_id
from services.notify.channels.smtp import SmtpEmailChannel
from services.notify.channels.tencent import TencentSms

__all__ = [
    "AliyunSms",
    "Attachment",
    "EmailChannel",
    "FileEmailChannel",
    "FileSmsChannel",
    "Limit",
    "OutgoingEmail",
    "OutgoingSms",
    "PermanentProviderError",
    "ProviderError",
    "RecordingEmailChannel",
    "RecordingSmsProvider",
    "SmsProvider",
    "SmtpEmailChannel",
    "TencentSms",
    "TransientProviderError",
    "build_message",
    "e164",
    "email_channel",
    "message_id",
    "sms_providers",
]
