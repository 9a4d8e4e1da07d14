"""Building the channels a deployment uses from its settings (``SERVICEMONTH_*``).

``SERVICEMONTH_SMS_PROVIDERS`` lists SMS providers in failover order (``aliyun,tencent``;
default ``file``: the outbox). A real provider needs its credentials and the template codes
approved for the account (``SERVICEMONTH_SMS_CODES_FILE``, same shape as
``templates/sms_codes.toml``, a code for every kind): a missing one stops the start with a
:class:`ConfigError` naming the key. ``SERVICEMONTH_EMAIL_CHANNEL`` is ``file`` (default) or
``smtp``. Every key may also be given with the service prefix
(``SERVICEMONTH_NOTIFY_SMTP_HOST``), which wins.
"""

from __future__ import annotations

from pathlib import Path

from services.notify.channels.aliyun import AliyunSms
from services.notify.channels.base import EmailChannel, SmsProvider
from services.notify.channels.files import DEFAULT_SENDER, FileEmailChannel, FileSmsChannel
from services.notify.channels.smtp import SmtpEmailChannel
from services.notify.channels.tencent import TencentSms
from services.notify.rendering import KINDS, SIGNATURE, RenderError, load_sms_codes
from shared.clock import Clock
from shared.config import PREFIX, ConfigError, Settings

SMS_CHOICES = ("file", "aliyun", "tencent")


def sms_providers(settings: Settings, clock: Clock | None = None) -> list[SmsProvider]:
    """The SMS providers to try, in failover order."""
    raw = settings.get("SMS_PROVIDERS", "notify") or "file"
    names = [n.strip().lower() for n in raw.split(",") if n.strip()]
    unknown = [n for n in names if n not in SMS_CHOICES]
    if unknown or not names or len(set(names)) != len(names):
        raise ConfigError(
            f"{PREFIX}SMS_PROVIDERS: {raw!r}: name each of {', '.join(SMS_CHOICES)} at most "
            "once, in failover order (e.g. aliyun,tencent)"
        )
    providers: list[SmsProvider] = []
    for name in names:
        if name == "file":
            providers.append(FileSmsChannel(settings.outbox_dir, clock))
        elif name == "aliyun":
            providers.append(
                AliyunSms(
                    access_key_id=_required(
                        settings.get("ALIYUN_ACCESS_KEY_ID", "notify"), "ALIYUN_ACCESS_KEY_ID"
                    ),
                    access_key_secret=_required(
                        settings.get("ALIYUN_ACCESS_KEY_SECRET", "notify"),
                        "ALIYUN_ACCESS_KEY_SECRET",
                    ),
                    sign_name=settings.get("ALIYUN_SMS_SIGN_NAME", "notify") or SIGNATURE,
                    endpoint=settings.get("ALIYUN_SMS_ENDPOINT", "notify")
                    or "dysmsapi.aliyuncs.com",
                    codes=_approved_codes(settings, "aliyun"),
                    clock=clock,
                )
            )
        else:
            providers.append(
                TencentSms(
                    secret_id=_required(
                        settings.get("TENCENT_SECRET_ID", "notify"), "TENCENT_SECRET_ID"
                    ),
                    secret_key=_required(
                        settings.get("TENCENT_SECRET_KEY", "notify"), "TENCENT_SECRET_KEY"
                    ),
                    sdk_app_id=_required(
                        settings.get("TENCENT_SMS_SDK_APP_ID", "notify"), "TENCENT_SMS_SDK_APP_ID"
                    ),
                    sign_name=settings.get("TENCENT_SMS_SIGN_NAME", "notify") or SIGNATURE,
                    region=settings.get("TENCENT_SMS_REGION", "notify") or "ap-guangzhou",
                    endpoint=settings.get("TENCENT_SMS_ENDPOINT", "notify")
                    or "sms.tencentcloudapi.com",
                    codes=_approved_codes(settings, "tencent"),
                    clock=clock,
                )
            )
    return providers


def email_channel(settings: Settings, clock: Clock | None = None) -> EmailChannel:
    """The e-mail channel: the outbox (``file``) or an SMTP server."""
    kind = (settings.get("EMAIL_CHANNEL", "notify") or "file").strip().lower()
    sender = settings.get("SMTP_FROM", "notify")
    if kind == "file":
        return FileEmailChannel(settings.outbox_dir, sender or DEFAULT_SENDER, clock)
    if kind != "smtp":
        raise ConfigError(f"{PREFIX}EMAIL_CHANNEL: {kind!r} is not one of file, smtp")
    port_raw = settings.get("SMTP_PORT", "notify") or "25"
    if not port_raw.isdigit() or not 0 < int(port_raw) < 65536:
        raise ConfigError(f"{PREFIX}SMTP_PORT: {port_raw!r} is not a TCP port")
    username = settings.get("SMTP_USERNAME", "notify")
    password = settings.get("SMTP_PASSWORD", "notify")
    if username and not password:
        raise ConfigError(f"{PREFIX}SMTP_PASSWORD: required with {PREFIX}SMTP_USERNAME")
    return SmtpEmailChannel(
        host=_required(settings.get("SMTP_HOST", "notify"), "SMTP_HOST", "EMAIL_CHANNEL=smtp"),
        port=int(port_raw),
        username=username,
        password=password,
        sender=_required(sender, "SMTP_FROM", "EMAIL_CHANNEL=smtp"),
        starttls=_flag(settings.get("SMTP_STARTTLS", "notify"), "SMTP_STARTTLS"),
        clock=clock,
    )


def _required(value: str | None, key: str, because: str = "") -> str:
    if not value:
        reason = because or "the SMS provider " + key.split("_")[0].lower()
        raise ConfigError(f"{PREFIX}{key}: required with {reason}")
    return value


def _flag(value: str | None, key: str) -> bool:
    text = (value or "false").strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{PREFIX}{key}: {value!r} is not true or false")


def _approved_codes(settings: Settings, provider: str) -> dict[str, str]:
    """The account's approved template codes; the packaged placeholders never go out."""
    path = _required(
        settings.get("SMS_CODES_FILE", "notify"),
        "SMS_CODES_FILE",
        f"the SMS provider {provider} (its approved template codes)",
    )
    try:
        own = load_sms_codes(Path(path)).get(provider, {})
        packaged = load_sms_codes().get(provider, {})
    except RenderError as exc:
        raise ConfigError(f"{PREFIX}SMS_CODES_FILE: {exc}") from None
    missing = [k for k in KINDS if not own.get(k) or own[k] == packaged.get(k)]
    if missing:
        raise ConfigError(
            f"{PREFIX}SMS_CODES_FILE: no approved {provider} template code for "
            f"{', '.join(missing)} (print the texts to submit with rendering.approval_text)"
        )
    return {k: own[k] for k in KINDS}
