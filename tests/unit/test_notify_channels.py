"""Notify's channels: the outbox files, the error mapping, the settings, the fakes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from services.notify.channels import (
    AliyunSms,
    Attachment,
    FileEmailChannel,
    FileSmsChannel,
    OutgoingEmail,
    OutgoingSms,
    PermanentProviderError,
    ProviderError,
    RecordingEmailChannel,
    RecordingSmsProvider,
    SmtpEmailChannel,
    TencentSms,
    TransientProviderError,
    aliyun,
    build_message,
    e164,
    email_channel,
    message_id,
    sms_providers,
    tencent,
)
from services.notify.rendering import KINDS, load_sms_codes, render_sms, sample_params
from shared.clock import SimulatedClock
from shared.config import ConfigError, load
from shared.pii import national_mobile, redact
from tests.support import sample_sms

PHONE = "13812348000"
NOW = datetime(2016, 7, 1, 2, 0, tzinfo=UTC)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


def outgoing_email(out_id: str = "0b6f1c2e-report") -> OutgoingEmail:
    return OutgoingEmail(
        out_id=out_id,
        to="zhangsan@example.com",
        to_masked="z***@example.com",
        kind="report_ready",
        subject="西工区服务月情况报告（第2周）",
        text="报告见附件。",
        html='<p>报告</p><img src="cid:chart1">',
        attachments=[
            Attachment("图表.png", "image/png", PNG, inline_cid="chart1"),
            Attachment("西工区报告.xlsx", "application/vnd.ms-excel", b"xlsx-bytes"),
        ],
    )


# --- the file outbox -----------------------------------------------------------------------


def test_the_sms_outbox_line_has_the_masked_number_and_the_rendered_text(tmp_path: Path) -> None:
    channel = FileSmsChannel(tmp_path, SimulatedClock(NOW))
    sms = sample_sms()
    assert channel.send(sms) == f"file:{sms.out_id}"
    raw = (tmp_path / "sms.jsonl").read_text(encoding="utf-8")
    assert PHONE not in raw
    line = json.loads(raw)
    assert line == {
        "out_id": sms.out_id,
        "to": "138****8000",
        "kind": "welcome",
        "template_code": sms.template_code,
        "params": sms.params,
        "text": sms.text,
        "segments": sms.segments,
        "at": NOW.isoformat(),
    }
    assert line["text"].startswith("【在职党员进社区】张三同志")


def test_the_sms_outbox_masks_every_number_in_the_text_and_params(tmp_path: Path) -> None:
    params = {
        **sample_params("pairing_made"),
        "what": "帮410302195001010015的老人代办",
        "contact": "李红 13900001111",
    }
    rendered = render_sms("pairing_made", params)
    sms = OutgoingSms(
        "0b6f1c2e-pairing",
        PHONE,
        "138****8000",
        "pairing_made",
        "",
        rendered.params,
        rendered.text,
        rendered.segments,
    )
    assert "13900001111" in sms.text  # the provider gets the number to call ...
    channel = FileSmsChannel(tmp_path)
    channel.send(sms)
    raw = (tmp_path / "sms.jsonl").read_text(encoding="utf-8")
    assert "13900001111" not in raw and "410302195001010015" not in raw  # ... the outbox not
    line = json.loads(raw)
    assert "李红 139****1111" in line["text"] and line["params"]["contact"] == "李红 139****1111"
    assert "410***********0015" in line["params"]["what"]
    assert channel.find(sms, NOW) == "file:0b6f1c2e-pairing"


def test_the_email_outbox_masks_numbers_in_the_body(tmp_path: Path) -> None:
    mail = OutgoingEmail(
        "0b6f1c2e-mail", "a@b.example", "a***@b.example", "pairing_made", "对接", "联系 13900001111"
    )
    FileEmailChannel(tmp_path).send(mail)
    raw = (tmp_path / "email" / "0b6f1c2e-mail.eml").read_bytes()
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    body = msg.get_body(("plain",))
    assert body is not None and "139****1111" in body.get_content()
    assert b"13900001111" not in raw


def test_the_sms_outbox_finds_a_send_by_out_id_and_ignores_torn_lines(tmp_path: Path) -> None:
    channel = FileSmsChannel(tmp_path)
    assert channel.find(sample_sms("a-1"), NOW) is None
    channel.send(sample_sms("a-1"))
    with open(tmp_path / "sms.jsonl", "a", encoding="utf-8") as fh:
        fh.write('{"out_id": "b-2", "to": "13')  # a crash mid-line
    assert channel.find(sample_sms("a-1"), NOW) == "file:a-1"
    assert channel.find(sample_sms("b-2"), NOW) is None
    assert channel.find(sample_sms("a"), NOW) is None


def test_the_email_outbox_file_parses_back_with_attachments_and_inline_image(
    tmp_path: Path,
) -> None:
    channel = FileEmailChannel(tmp_path, "服务月 <noreply@lyzzb.example>", SimulatedClock(NOW))
    mail = outgoing_email()
    ref = channel.send(mail)
    path = tmp_path / "email" / f"{mail.out_id}.eml"
    raw = path.read_bytes()
    assert b"zhangsan" not in raw
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    assert msg["Subject"] == mail.subject
    assert msg["Message-ID"] == ref == f"<{mail.out_id}.notify@lyzzb.example>"
    assert "z***@example.com" in msg["To"]
    assert msg.get_content_type() == "multipart/mixed"
    body = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert body is not None and body.get_content().strip() == mail.text
    assert html is not None and 'src="cid:chart1"' in html.get_content()
    related = next(p for p in msg.walk() if p.get_content_type() == "multipart/related")
    image = next(p for p in related.iter_parts() if p.get_content_type() == "image/png")
    assert image["Content-ID"] == "<chart1>" and image.get_content() == PNG
    attachments = list(msg.iter_attachments())
    assert [a.get_filename() for a in attachments] == ["西工区报告.xlsx"]
    assert attachments[0].get_content() == b"xlsx-bytes"
    assert channel.find(mail) == ref
    assert channel.find(outgoing_email("someone-else")) is None


def test_message_ids_follow_the_out_id_and_refuse_unsafe_ids() -> None:
    mail = outgoing_email()
    first = build_message(mail, "noreply@a.example", mail.to, NOW)["Message-ID"]
    again = build_message(mail, "noreply@a.example", mail.to, datetime.now(UTC))["Message-ID"]
    assert first == again == message_id(mail.out_id, "noreply@a.example")
    with pytest.raises(ValueError, match="out_id"):
        message_id("../../etc/passwd", "noreply@a.example")


def test_a_plain_text_email_has_no_html_part() -> None:
    mail = OutgoingEmail("t-1", "a@b.example", "a***@b.example", "welcome", "主题", "正文")
    msg = build_message(mail, "noreply@a.example", mail.to, NOW)
    assert msg.get_content_type() == "text/plain"


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "retryable"),
    [
        ("isv.BUSINESS_LIMIT_CONTROL", True),
        ("Throttling.User", True),
        ("isp.SYSTEM_ERROR", True),
        ("isv.AMOUNT_NOT_ENOUGH", True),
        ("isv.MOBILE_NUMBER_ILLEGAL", False),
        ("isv.SMS_TEMPLATE_ILLEGAL", False),
        ("isv.SMS_SIGNATURE_ILLEGAL", False),
        ("isv.TEMPLATE_MISSING_PARAMETERS", False),
        ("isv.BLACK_KEY_CONTROL_LIMIT", False),
    ],
)
def test_aliyun_codes_map_to_transient_or_permanent(code: str, retryable: bool) -> None:
    error = aliyun.error_for(code, "message")
    assert error.retryable is retryable and error.code == code and error.provider == "aliyun"
    assert isinstance(error, TransientProviderError if retryable else PermanentProviderError)


@pytest.mark.parametrize(
    ("code", "retryable"),
    [
        ("LimitExceeded.PhoneNumberThirtySecondLimit", True),
        ("LimitExceeded.PhoneNumberSameContentDailyLimit", True),
        ("InternalError.Timeout", True),
        ("RequestLimitExceeded", True),
        ("ClientNetworkError", True),
        ("FailedOperation.InsufficientBalanceInSmsPackage", True),
        ("InvalidParameterValue.IncorrectPhoneNumber", False),
        ("FailedOperation.TemplateIncorrectOrUnapproved", False),
        ("FailedOperation.SignatureIncorrectOrUnapproved", False),
        ("FailedOperation.PhoneNumberInBlacklist", False),
        ("AuthFailure.SignatureFailure", False),
    ],
)
def test_tencent_codes_map_to_transient_or_permanent(code: str, retryable: bool) -> None:
    error = tencent.error_for(code, "message")
    assert error.retryable is retryable and error.code == code and error.provider == "tencent"


def test_error_texts_never_carry_a_number_or_an_address_in_clear() -> None:
    error = ProviderError("x", f"rejected +86{PHONE} and zhangsan@example.com", provider="p")
    assert PHONE not in str(error) and "zhangsan" not in str(error)
    assert "138****8000" in str(error) and "z***@example.com" in str(error)
    assert redact(f"/?PhoneNumbers={PHONE}&x=1") == "/?PhoneNumbers=138****8000&x=1"
    assert redact("order 2138123480001234") == "order 2138123480001234"  # not a phone
    id_error = ProviderError("x", "id 410302195001010015 refused", provider="p")
    assert "410302195001010015" not in str(id_error)  # shared.pii.redact: ID numbers too


def test_numbers_are_written_the_way_each_provider_takes_them() -> None:
    assert national_mobile("+86 138-1234-8000") == PHONE
    assert national_mobile("008613812348000") == PHONE
    assert e164(PHONE) == f"+86{PHONE}"


def test_providers_refuse_a_kind_without_an_approved_code() -> None:
    provider = AliyunSms("id", "secret", "签名", "http://127.0.0.1:9", codes={})
    with pytest.raises(PermanentProviderError, match="TemplateNotApproved"):
        provider.send(sample_sms())


def test_provider_limits_describe_the_documented_caps() -> None:
    (per_template,) = AliyunSms.limits
    assert (per_template.per, per_template.window.total_seconds(), per_template.count) == (
        "number+template",
        86400,
        50,
    )
    assert [(lim.per, lim.window.total_seconds(), lim.count) for lim in TencentSms.limits] == [
        ("number+content", 30, 1),
        ("number+content", 86400, 10),
    ]


# --- settings --------------------------------------------------------------------------------

ALIYUN_ENV = {
    "SERVICEMONTH_ALIYUN_ACCESS_KEY_ID": "ak",
    "SERVICEMONTH_ALIYUN_ACCESS_KEY_SECRET": "secret",
}
TENCENT_ENV = {
    "SERVICEMONTH_TENCENT_SECRET_ID": "sid",
    "SERVICEMONTH_TENCENT_SECRET_KEY": "skey",
    "SERVICEMONTH_TENCENT_SMS_SDK_APP_ID": "1400000000",
}


def approved_codes(tmp_path: Path, skip: str = "") -> Path:
    path = tmp_path / "codes.toml"
    lines = []
    for provider, base in (("aliyun", "SMS_5"), ("tencent", "20")):
        lines.append(f"[{provider}]")
        lines += [f'{k} = "{base}{i:08d}"' for i, k in enumerate(KINDS) if k != skip]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_the_default_sms_provider_is_the_outbox(tmp_path: Path) -> None:
    (provider,) = sms_providers(load({"SERVICEMONTH_HOME": str(tmp_path)}))
    assert isinstance(provider, FileSmsChannel) and provider.path.parent == tmp_path / "outbox"


def test_providers_are_built_in_failover_order_with_the_approved_codes(tmp_path: Path) -> None:
    env = {
        **ALIYUN_ENV,
        **TENCENT_ENV,
        "SERVICEMONTH_HOME": str(tmp_path),
        "SERVICEMONTH_SMS_PROVIDERS": "tencent, aliyun",
        "SERVICEMONTH_SMS_CODES_FILE": str(approved_codes(tmp_path)),
    }
    first, second = sms_providers(load(env))
    assert isinstance(first, TencentSms) and isinstance(second, AliyunSms)
    assert first.codes["welcome"].startswith("20") and second.codes["welcome"].startswith("SMS_5")
    assert first.sign_name == second.sign_name == "在职党员进社区"


@pytest.mark.parametrize("missing", [*ALIYUN_ENV, "SERVICEMONTH_SMS_CODES_FILE"])
def test_a_missing_aliyun_setting_is_named(tmp_path: Path, missing: str) -> None:
    env = {
        **ALIYUN_ENV,
        "SERVICEMONTH_SMS_PROVIDERS": "aliyun",
        "SERVICEMONTH_SMS_CODES_FILE": str(approved_codes(tmp_path)),
    }
    del env[missing]
    with pytest.raises(ConfigError, match=missing):
        sms_providers(load(env))


@pytest.mark.parametrize("missing", list(TENCENT_ENV))
def test_a_missing_tencent_setting_is_named(tmp_path: Path, missing: str) -> None:
    env = {
        **TENCENT_ENV,
        "SERVICEMONTH_SMS_PROVIDERS": "tencent",
        "SERVICEMONTH_SMS_CODES_FILE": str(approved_codes(tmp_path)),
    }
    del env[missing]
    with pytest.raises(ConfigError, match=missing):
        sms_providers(load(env))


def test_the_notify_prefixed_key_wins(tmp_path: Path) -> None:
    env = {
        **ALIYUN_ENV,
        "SERVICEMONTH_NOTIFY_ALIYUN_SMS_SIGN_NAME": "洛阳组工",
        "SERVICEMONTH_ALIYUN_SMS_SIGN_NAME": "别的签名",
        "SERVICEMONTH_SMS_PROVIDERS": "aliyun",
        "SERVICEMONTH_SMS_CODES_FILE": str(approved_codes(tmp_path)),
    }
    (provider,) = sms_providers(load(env))
    assert isinstance(provider, AliyunSms) and provider.sign_name == "洛阳组工"


def test_placeholder_or_missing_template_codes_never_reach_a_real_provider(
    tmp_path: Path,
) -> None:
    env = {**ALIYUN_ENV, "SERVICEMONTH_SMS_PROVIDERS": "aliyun"}
    env["SERVICEMONTH_SMS_CODES_FILE"] = str(approved_codes(tmp_path, skip="digest"))
    with pytest.raises(ConfigError, match="SMS_CODES_FILE: no approved aliyun template code for"):
        sms_providers(load(env))
    packaged = tmp_path / "packaged.toml"
    packaged.write_text(
        "[aliyun]\n" + "".join(f'{k} = "{c}"\n' for k, c in load_sms_codes()["aliyun"].items()),
        encoding="utf-8",
    )
    env["SERVICEMONTH_SMS_CODES_FILE"] = str(packaged)
    with pytest.raises(ConfigError, match="welcome"):
        sms_providers(load(env))


@pytest.mark.parametrize("value", ["carrier-pigeon", "aliyun,aliyun", " , "])
def test_an_unknown_or_repeated_provider_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="SERVICEMONTH_SMS_PROVIDERS"):
        sms_providers(load({"SERVICEMONTH_SMS_PROVIDERS": value}))


def test_the_default_email_channel_is_the_outbox(tmp_path: Path) -> None:
    channel = email_channel(load({"SERVICEMONTH_HOME": str(tmp_path)}))
    assert isinstance(channel, FileEmailChannel)
    assert channel.directory == tmp_path / "outbox" / "email"


def test_smtp_is_built_from_its_settings() -> None:
    env = {
        "SERVICEMONTH_EMAIL_CHANNEL": "smtp",
        "SERVICEMONTH_SMTP_HOST": "smtp.example.com",
        "SERVICEMONTH_SMTP_PORT": "587",
        "SERVICEMONTH_SMTP_USERNAME": "notify",
        "SERVICEMONTH_SMTP_PASSWORD": "pw",
        "SERVICEMONTH_SMTP_FROM": "服务月 <noreply@example.com>",
        "SERVICEMONTH_SMTP_STARTTLS": "true",
    }
    channel = email_channel(load(env))
    assert isinstance(channel, SmtpEmailChannel)
    assert (channel.host, channel.port, channel.starttls) == ("smtp.example.com", 587, True)
    for key, value in [
        ("SERVICEMONTH_SMTP_HOST", ""),
        ("SERVICEMONTH_SMTP_FROM", ""),
        ("SERVICEMONTH_SMTP_PASSWORD", ""),
        ("SERVICEMONTH_SMTP_PORT", "smtp"),
        ("SERVICEMONTH_SMTP_STARTTLS", "maybe"),
        ("SERVICEMONTH_EMAIL_CHANNEL", "fax"),
    ]:
        with pytest.raises(ConfigError, match=key):
            email_channel(load({**env, key: value}))


# --- the fakes other tests use -----------------------------------------------------------------


def test_the_recording_provider_fails_as_told_then_accepts() -> None:
    provider = RecordingSmsProvider()
    provider.fail_next(TransientProviderError("Timeout"), None)
    with pytest.raises(TransientProviderError):
        provider.send(sample_sms("r-1"))
    assert provider.find(sample_sms("r-1"), NOW) is None
    assert provider.send(sample_sms("r-1")) == "recording:r-1"
    assert provider.send(sample_sms("r-2")) == "recording:r-2"
    assert [s.out_id for s in provider.attempts] == ["r-1", "r-1", "r-2"]
    assert [s.out_id for s in provider.sent] == ["r-1", "r-2"]
    assert provider.find(sample_sms("r-1"), NOW) == "recording:r-1"


def test_a_flaky_provider_times_out_at_about_its_rate_reproducibly() -> None:
    def outcomes() -> list[bool]:
        provider = RecordingSmsProvider.flaky("aliyun", 0.3, seed=7)
        results = []
        for i in range(200):
            try:
                provider.send(sample_sms(f"f-{i}"))
                results.append(True)
            except TransientProviderError:
                results.append(False)
        return results

    first = outcomes()
    assert first == outcomes()
    assert 40 <= first.count(False) <= 80


def test_after_accept_plays_a_crash_after_the_provider_took_the_message() -> None:
    def crash(sms: OutgoingSms) -> None:
        raise SystemExit("killed")

    provider = RecordingSmsProvider(after_accept=crash)
    with pytest.raises(SystemExit):
        provider.send(sample_sms("k-1"))
    assert provider.find(sample_sms("k-1"), NOW) == "recording:k-1"


def test_the_recording_email_channel_answers_with_the_deterministic_message_id() -> None:
    channel = RecordingEmailChannel()
    channel.fail_next(PermanentProviderError("550"))
    with pytest.raises(PermanentProviderError):
        channel.send(outgoing_email())
    ref = channel.send(outgoing_email())
    assert (
        ref == channel.find(outgoing_email()) == message_id(outgoing_email().out_id, channel.sender)
    )
