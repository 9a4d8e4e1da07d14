"""The real SMS SDKs against a local fake of each provider, and SMTP against a real server.

One threaded HTTP server on 127.0.0.1 answers like Aliyun's dysmsapi (RPC style: the action
in ``x-acs-action``, the parameters in the query, a JSON answer) and like Tencent Cloud's
API 3.0 (``X-TC-Action``, a JSON body, ``{"Response": ...}``). The official SDK clients are
pointed at it over plain http, so their request building, signing and answer parsing run
for real. E-mail goes to a real local SMTP server (aiosmtpd).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from aiosmtpd.controller import Controller

from services.notify.channels import (
    AliyunSms,
    Attachment,
    OutgoingEmail,
    OutgoingSms,
    PermanentProviderError,
    SmtpEmailChannel,
    TencentSms,
    TransientProviderError,
)
from services.notify.rendering import load_sms_codes, render_email, sample_params
from tests.support import free_port, json_server, sample_sms

PHONE = "13812348000"
TIMEOUT = 0.5
CODES = load_sms_codes()


@dataclass
class Seen:
    """One request the fake received."""

    action: str
    params: dict[str, Any]


@dataclass
class FakeProviders:
    """Answers as Aliyun and Tencent do; remembers what they accepted, for reconciling."""

    seen: list[Seen] = field(default_factory=list)
    scripted: dict[str, deque[tuple[int, dict[str, Any], float]]] = field(default_factory=dict)
    aliyun_sent: list[dict[str, str]] = field(default_factory=list)
    tencent_sent: list[dict[str, Any]] = field(default_factory=list)

    def script(self, action: str, status: int, body: dict[str, Any], delay: float = 0) -> None:
        """Answer the next ``action`` request with ``body`` (after ``delay`` seconds)."""
        self.scripted.setdefault(action, deque()).append((status, body, delay))

    def requests(self, action: str) -> list[dict[str, Any]]:
        return [s.params for s in self.seen if s.action == action]

    def answer(self, action: str, params: dict[str, Any]) -> tuple[int, dict[str, Any], float]:
        self.seen.append(Seen(action, params))
        queue = self.scripted.get(action)
        if queue:
            return queue.popleft()
        if action == "aliyun:SendSms":
            self.aliyun_sent.append(params)
            biz_id = f"{len(self.aliyun_sent):06d}^0"
            return 200, {"Code": "OK", "Message": "OK", "BizId": biz_id, "RequestId": "r"}, 0
        if action == "aliyun:QuerySendDetails":
            found = [
                {
                    "PhoneNum": p["PhoneNumbers"],
                    "SendStatus": 3,
                    "TemplateCode": p["TemplateCode"],
                    "OutId": p["OutId"],
                    "SendDate": "2016-07-01 10:00:00",
                    "Content": "…",
                }
                for p in self.aliyun_sent
                if p["PhoneNumbers"] == params["PhoneNumber"]
            ]
            return (
                200,
                {
                    "Code": "OK",
                    "Message": "OK",
                    "RequestId": "r",
                    "TotalCount": str(len(found)),
                    "SmsSendDetailDTOs": {"SmsSendDetailDTO": found},
                },
                0,
            )
        if action == "tencent:SendSms":
            self.tencent_sent.append(params)
            serial = f"2640:{len(self.tencent_sent)}"
            status = {
                "SerialNo": serial,
                "PhoneNumber": params["PhoneNumberSet"][0],
                "Fee": 1,
                "SessionContext": params.get("SessionContext", ""),
                "Code": "Ok",
                "Message": "send success",
                "IsoCode": "CN",
            }
            return 200, {"Response": {"SendStatusSet": [status], "RequestId": "r"}}, 0
        if action == "tencent:PullSmsSendStatusByPhoneNumber":
            statuses = [
                {
                    "UserReceiveTime": "2016-07-01 10:00:01",
                    "CountryCode": "86",
                    "SubscriberNumber": p["PhoneNumberSet"][0][3:],
                    "PhoneNumber": p["PhoneNumberSet"][0],
                    "SerialNo": f"2640:{i}",
                    "ReportStatus": "SUCCESS",
                    "Description": "DELIVRD",
                    "SessionContext": p.get("SessionContext", ""),
                }
                for i, p in enumerate(self.tencent_sent, 1)
                if p["PhoneNumberSet"][0] == params["PhoneNumber"]
            ]
            page = statuses[params["Offset"] : params["Offset"] + params["Limit"]]
            return 200, {"Response": {"PullSmsSendStatusSet": page, "RequestId": "r"}}, 0
        return 404, {"Code": "InvalidAction.NotFound", "Message": action}, 0


@pytest.fixture
def fake() -> Iterator[tuple[FakeProviders, str]]:
    providers = FakeProviders()

    def answer(path: str, headers: Any, raw: bytes) -> tuple[int, dict[str, Any], float]:
        if headers.get("X-TC-Action"):
            return providers.answer("tencent:" + headers["X-TC-Action"], json.loads(raw or b"{}"))
        params = dict(parse_qsl(urlsplit(path).query))
        return providers.answer("aliyun:" + (headers.get("x-acs-action") or ""), params)

    with json_server(answer) as url:
        yield providers, url


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(key, raising=False)


def aliyun(endpoint: str) -> AliyunSms:
    return AliyunSms(
        "ak-id", "ak-secret", "在职党员进社区", endpoint, CODES["aliyun"], timeout=TIMEOUT
    )


def tencent(endpoint: str) -> TencentSms:
    return TencentSms(
        "secret-id",
        "secret-key",
        "1400000001",
        "在职党员进社区",
        "ap-guangzhou",
        endpoint,
        CODES["tencent"],
        timeout=TIMEOUT,
    )


# --- Aliyun ----------------------------------------------------------------------------------


def test_aliyun_sends_the_approved_template_with_our_out_id(fake: Any) -> None:
    providers, endpoint = fake
    message = sample_sms("7d0c6a52-0001")
    assert aliyun(endpoint).send(message) == "000001^0"
    (request,) = providers.requests("aliyun:SendSms")
    assert request["PhoneNumbers"] == PHONE
    assert request["SignName"] == "在职党员进社区"
    assert request["TemplateCode"] == CODES["aliyun"]["welcome"]
    assert json.loads(request["TemplateParam"]) == message.params
    assert request["OutId"] == message.out_id


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (200, {"Code": "isv.BUSINESS_LIMIT_CONTROL", "Message": "触发分钟级流控"}, "transient"),
        (400, {"Code": "Throttling.User", "Message": "Request was denied"}, "transient"),
        (503, {"Code": "ServiceUnavailable", "Message": "try later"}, "transient"),
        (200, {"Code": "isv.MOBILE_NUMBER_ILLEGAL", "Message": "非法手机号"}, "permanent"),
        (200, {"Code": "isv.SMS_TEMPLATE_ILLEGAL", "Message": "模板不合法"}, "permanent"),
        (400, {"Code": "isv.SMS_SIGNATURE_ILLEGAL", "Message": "签名不合法"}, "permanent"),
    ],
)
def test_aliyun_refusals_map_to_transient_or_permanent(
    fake: Any, status: int, body: dict[str, str], error: str
) -> None:
    providers, endpoint = fake
    providers.script("aliyun:SendSms", status, {**body, "RequestId": "r"})
    expected = TransientProviderError if error == "transient" else PermanentProviderError
    with pytest.raises(expected) as caught:
        aliyun(endpoint).send(sample_sms("7d0c6a52-0001"))
    assert caught.value.code == body["Code"] and caught.value.provider == "aliyun"
    assert PHONE not in str(caught.value)


def test_an_aliyun_timeout_is_transient_and_names_no_number(fake: Any) -> None:
    providers, endpoint = fake
    providers.script("aliyun:SendSms", 200, {"Code": "OK", "BizId": "late"}, delay=TIMEOUT * 3)
    with pytest.raises(TransientProviderError) as caught:
        aliyun(endpoint).send(sample_sms("7d0c6a52-0001"))
    assert caught.value.code == "NetworkError"
    assert PHONE not in str(caught.value) and caught.value.__suppress_context__


def test_aliyun_reconciles_a_send_by_our_out_id(fake: Any) -> None:
    providers, endpoint = fake
    provider = aliyun(endpoint)
    message = sample_sms("7d0c6a52-0002")
    provider.send(message)  # the provider took it; suppose we crashed before recording
    since = datetime.now(UTC) - timedelta(hours=1)
    assert provider.find(message, since) == "out:7d0c6a52-0002"
    assert provider.find(sample_sms("7d0c6a52-0003"), since) is None
    queries = providers.requests("aliyun:QuerySendDetails")
    assert {q["PhoneNumber"] for q in queries} == {PHONE}
    assert all(len(q["SendDate"]) == 8 and q["SendDate"].isdigit() for q in queries)


# --- Tencent ---------------------------------------------------------------------------------


def test_tencent_sends_the_template_params_in_template_order(fake: Any) -> None:
    providers, endpoint = fake
    message = sample_sms("7d0c6a52-0001", "pairing_made")
    reversed_params = dict(reversed(list(message.params.items())))  # e.g. back from jsonb
    shuffled = OutgoingSms(**{**message.__dict__, "params": reversed_params})
    assert tencent(endpoint).send(shuffled) == "2640:1"
    (request,) = providers.requests("tencent:SendSms")
    assert request["PhoneNumberSet"] == [f"+86{PHONE}"]
    assert request["SmsSdkAppId"] == "1400000001"
    assert request["TemplateId"] == CODES["tencent"]["pairing_made"]
    assert request["TemplateParamSet"] == [
        message.params["name"],
        message.params["community"],
        message.params["what"],
        message.params["contact"],
    ]
    assert request["SessionContext"] == message.out_id


def _status(code: str) -> dict[str, Any]:
    status = {"SerialNo": "", "PhoneNumber": f"+86{PHONE}", "Fee": 0, "SessionContext": ""}
    return {"Response": {"SendStatusSet": [{**status, "Code": code, "Message": code}]}}


@pytest.mark.parametrize(
    ("body", "code", "error"),
    [
        (_status("LimitExceeded.PhoneNumberThirtySecondLimit"), None, "transient"),
        (_status("InvalidParameterValue.IncorrectPhoneNumber"), None, "permanent"),
        (_status("FailedOperation.TemplateIncorrectOrUnapproved"), None, "permanent"),
        (
            {"Response": {"Error": {"Code": "InternalError.Timeout", "Message": "超时"}}},
            "InternalError.Timeout",
            "transient",
        ),
        (
            {"Response": {"Error": {"Code": "RequestLimitExceeded", "Message": "频率"}}},
            "RequestLimitExceeded",
            "transient",
        ),
        (
            {"Response": {"Error": {"Code": "AuthFailure.SignatureFailure", "Message": "签名"}}},
            "AuthFailure.SignatureFailure",
            "permanent",
        ),
    ],
)
def test_tencent_refusals_map_to_transient_or_permanent(
    fake: Any, body: dict[str, Any], code: str | None, error: str
) -> None:
    providers, endpoint = fake
    body["Response"]["RequestId"] = "r"
    providers.script("tencent:SendSms", 200, body)
    expected = TransientProviderError if error == "transient" else PermanentProviderError
    with pytest.raises(expected) as caught:
        tencent(endpoint).send(sample_sms("7d0c6a52-0001"))
    wanted = code or body["Response"]["SendStatusSet"][0]["Code"]
    assert caught.value.code == wanted and caught.value.provider == "tencent"


def test_a_tencent_timeout_or_server_error_is_transient(fake: Any) -> None:
    providers, endpoint = fake
    providers.script("tencent:SendSms", 200, _status("Ok"), delay=TIMEOUT * 3)
    with pytest.raises(TransientProviderError) as caught:
        tencent(endpoint).send(sample_sms("7d0c6a52-0001"))
    assert caught.value.code == "ClientNetworkError" and PHONE not in str(caught.value)
    providers.script("tencent:SendSms", 502, {"message": "bad gateway"})
    with pytest.raises(TransientProviderError):
        tencent(endpoint).send(sample_sms("7d0c6a52-0001"))


def test_tencent_reconciles_a_send_by_our_session_context(fake: Any) -> None:
    providers, endpoint = fake
    provider = tencent(endpoint)
    provider.send(sample_sms("7d0c6a52-0004"))
    serial = provider.send(sample_sms("7d0c6a52-0005"))
    since = datetime.now(UTC) - timedelta(minutes=5)
    assert provider.find(sample_sms("7d0c6a52-0005"), since) == serial
    assert provider.find(sample_sms("7d0c6a52-0006"), since) is None
    (query, _) = providers.requests("tencent:PullSmsSendStatusByPhoneNumber")
    assert query["PhoneNumber"] == f"+86{PHONE}" and query["SmsSdkAppId"] == "1400000001"
    assert query["BeginTime"] == int(since.timestamp()) <= query["EndTime"]


def test_tencent_pages_through_the_receipts_of_a_busy_number(fake: Any) -> None:
    providers, endpoint = fake
    provider = tencent(endpoint)
    for i in range(150):  # a week of receipts for one number, ours among the last
        providers.tencent_sent.append(
            {"PhoneNumberSet": [f"+86{PHONE}"], "SessionContext": f"7d0c6a52-{i:04d}"}
        )
    since = datetime.now(UTC) - timedelta(days=1)
    assert provider.find(sample_sms("7d0c6a52-0130"), since) == "2640:131"
    assert provider.find(sample_sms("7d0c6a52-9999"), since) is None
    pages = [
        (q["Offset"], q["Limit"])
        for q in providers.requests("tencent:PullSmsSendStatusByPhoneNumber")
    ]
    assert pages == [(0, 100), (100, 100), (0, 100), (100, 100)]


def test_a_failing_look_up_raises_a_provider_error(fake: Any) -> None:
    providers, endpoint = fake
    providers.script(
        "tencent:PullSmsSendStatusByPhoneNumber",
        200,
        {"Response": {"Error": {"Code": "InternalError", "Message": "x"}, "RequestId": "r"}},
    )
    with pytest.raises(TransientProviderError):
        tencent(endpoint).find(sample_sms("7d0c6a52-0001"), datetime.now(UTC) - timedelta(hours=1))
    assert TencentSms.settle_after > AliyunSms.settle_after > timedelta(0)


# --- SMTP ------------------------------------------------------------------------------------


class Inbox:
    """An aiosmtpd handler keeping what arrives; some recipients are refused."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address.startswith("busy@"):
            return "451 4.3.0 Mailbox busy, try again later"
        if address.startswith("nobody@"):
            return "550 5.1.1 <nobody@example.com>: no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield inbox, controller.port
    controller.stop()


def report_email(to: str = "leader@example.com") -> OutgoingEmail:
    params = {**sample_params("report_ready"), "report_html": "<p>见图</p>"}
    rendered = render_email("report_ready", params)
    return OutgoingEmail(
        out_id="5e1d7a90-report",
        to=to,
        to_masked="l***@example.com",
        kind="report_ready",
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        attachments=[
            Attachment("chart.png", "image/png", b"\x89PNG-bytes", inline_cid="chart1"),
            Attachment("西工区报告.xlsx", "application/octet-stream", b"xlsx-bytes"),
        ],
    )


def test_an_email_arrives_with_subject_html_and_attachment_and_keeps_its_id_on_retry(
    smtp_server: tuple[Inbox, int],
) -> None:
    inbox, port = smtp_server
    channel = SmtpEmailChannel("127.0.0.1", port, sender="服务月 <noreply@lyzzb.example>")
    mail = report_email()
    first = channel.send(mail)
    again = channel.send(mail)  # a retry after a crash between DATA and our record
    assert first == again == "<5e1d7a90-report.notify@lyzzb.example>"
    assert channel.find(mail) is None  # SMTP cannot be asked
    assert [m["Message-ID"] for m in inbox.messages] == [first, first]
    message = inbox.messages[0]
    assert message["Subject"] == "西工区服务月情况报告（第2周）"
    assert message["To"] == "leader@example.com"
    html = message.get_body(("html",))
    assert html is not None and "报到率92%" in html.get_content()
    (attachment,) = message.iter_attachments()
    assert attachment.get_filename() == "西工区报告.xlsx"
    assert attachment.get_content() == b"xlsx-bytes"
    assert any(p["Content-ID"] == "<chart1>" for p in message.walk())


def test_smtp_4xx_is_transient_and_5xx_permanent_without_the_address(
    smtp_server: tuple[Inbox, int],
) -> None:
    inbox, port = smtp_server
    channel = SmtpEmailChannel("127.0.0.1", port, sender="noreply@lyzzb.example")
    with pytest.raises(TransientProviderError) as busy:
        channel.send(report_email("busy@example.com"))
    assert busy.value.code == "451"
    with pytest.raises(PermanentProviderError) as nobody:
        channel.send(report_email("nobody@example.com"))
    assert nobody.value.code == "550" and "nobody@" not in str(nobody.value)
    assert inbox.messages == []


def test_an_unreachable_smtp_server_is_transient() -> None:
    channel = SmtpEmailChannel("127.0.0.1", free_port(), sender="noreply@lyzzb.example")
    with pytest.raises(TransientProviderError, match="ConnectionError"):
        channel.send(report_email())
