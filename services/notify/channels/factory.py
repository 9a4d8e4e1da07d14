"""Building the channels a deployment uses from its settings (``SERVICEMONTH_*``).

``SERVICEMONTH_SMS_PROVIDERS`` lists SMS providers in failover order (``aliyun,tencent``;
default ``file``: the outbox). A real provider needs its credentials and the template codes
approved for the account (``SERVICEMONTH_SMS_CODES_FILE``, same shape as
``templates/sms_codes.toml``, a code for every kind). ``SERVICEMONTH_EMAIL_CHANNEL`` is
``file`` (default) or ``smtp``. Every key may also be given with the service prefix
(``SERVICEMONTH_NOTIFY_SMTP_HOST``), which wins. The keys are parsed and checked by
``shared.config.load`` (``settings.notify``): a missing or malformed one stops any process
at start with a :class:`ConfigError` naming it; the codes file is read here.
"""

from __future__ import annotations

from pydantic import SecretStr

from services.notify.channels.aliyun import AliyunSms
from services.notify.channels.base import EmailChannel, SmsProvider
from services.notify.channels.files import DEFAULT_SENDER, FileEmailChannel, FileSmsChannel
from services.notify.channels.smtp import SmtpEmailChannel
from services.notify.channels.tencent import TencentSms
from services.notify.rendering import KINDS, SIGNATURE, RenderError, load_sms_codes
from shared.clock import Clock
from shared.config import PREFIX, ConfigError, Settings


def sms_providers(settings: Settings, clock: Clock | None = None) -> list[SmsProvider]:
    """The SMS providers to try, in failover order (``settings.notify``, checked at start:
    a chosen provider's credentials are there)."""
    own = settings.notify
    providers: list[SmsProvider] = []
    for name in own.sms_providers:
        if name == "file":
            providers.append(FileSmsChannel(settings.outbox_dir, clock))
        elif name == "aliyun":
            providers.append(
                AliyunSms(
                    access_key_id=_required(own.aliyun_access_key_id, "ALIYUN_ACCESS_KEY_ID"),
                    access_key_secret=_required(
                        _secret(own.aliyun_access_key_secret), "ALIYUN_ACCESS_KEY_SECRET"
                    ),
                    sign_name=own.aliyun_sms_sign_name or SIGNATURE,
                    endpoint=own.aliyun_sms_endpoint,
                    codes=_approved_codes(settings, "aliyun"),
                    clock=clock,
                )
            )
        else:
            providers.append(
                TencentSms(
                    secret_id=_required(own.tencent_secret_id, "TENCENT_SECRET_ID"),
                    secret_key=_required(_secret(own.tencent_secret_key), "TENCENT_SECRET_KEY"),
                    sdk_app_id=_required(own.tencent_sms_sdk_app_id, "TENCENT_SMS_SDK_APP_ID"),
                    sign_name=own.tencent_sms_sign_name or SIGNATURE,
                    region=own.tencent_sms_region,
                    endpoint=own.tencent_sms_endpoint,
                    codes=_approved_codes(settings, "tencent"),
                    clock=clock,
                )
            )
    return providers


def email_channel(settings: Settings, clock: Clock | None = None) -> EmailChannel:
    """The e-mail channel: the outbox (``file``) or an SMTP server."""
    own = settings.notify
    if own.email_channel == "file":
        return FileEmailChannel(settings.outbox_dir, own.smtp_from or DEFAULT_SENDER, clock)
    return SmtpEmailChannel(
        host=_required(own.smtp_host, "SMTP_HOST", "EMAIL_CHANNEL=smtp"),
        port=own.smtp_port,
        username=own.smtp_username,
        password=_secret(own.smtp_password),
        sender=_required(own.smtp_from, "SMTP_FROM", "EMAIL_CHANNEL=smtp"),
        starttls=own.smtp_starttls,
        clock=clock,
    )


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def _required(value: str | None, key: str, because: str = "") -> str:
    """``shared.config.load`` refuses a missing one already; this narrows the type."""
    if not value:
        reason = because or "the SMS provider " + key.split("_")[0].lower()
        raise ConfigError(f"{PREFIX}{key}: required with {reason}")
    return value


def _approved_codes(settings: Settings, provider: str) -> dict[str, str]:
    """The account's approved template codes; the packaged placeholders never go out."""
    path = settings.notify.sms_codes_file
    if path is None:  # load() refuses this already; the check narrows the type
        raise ConfigError(
            f"{PREFIX}SMS_CODES_FILE: required with the SMS provider {provider} "
            "(its approved template codes)"
        )
    try:
        own = load_sms_codes(path).get(provider, {})
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
