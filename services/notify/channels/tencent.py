"""Tencent Cloud SMS (API 3.0, version 2021-01-11) through its official SDK.

Sends an approved template: ``SendSms(PhoneNumberSet, SmsSdkAppId, SignName, TemplateId,
TemplateParamSet, SessionContext)``; the status's ``SerialNo`` is the reference.
TemplateParamSet is an ordered list, so the order comes from the kind catalogue
(rendering.KINDS), never from a dict that went through a database.

``find`` looks for our SessionContext in ``PullSmsSendStatusByPhoneNumber`` (the last 7
days), page by page (``Offset``/``Limit``, at most 100 a page). That API lists delivery
*receipts*, which lag the send: a send accepted moments ago may not be listed yet, so
``None`` means "not seen yet" rather than "never sent" until ``settle_after`` has passed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import (
    TencentCloudSDKException,
)
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.sms.v20210111 import models, sms_client

from services.notify.channels.base import (
    Limit,
    OutgoingSms,
    PermanentProviderError,
    ProviderError,
    e164,
)
from services.notify.channels.sdk import classify, quiet_sdk_loggers, split_endpoint
from services.notify.rendering import KINDS
from shared.clock import Clock, SystemClock

TRANSIENT_CODES = (
    "ClientNetworkError",
    "ServerNetworkError",
    "InternalError",
    "RequestLimitExceeded",
    "LimitExceeded",
    "FailedOperation.InsufficientBalanceInSmsPackage",
    "FailedOperation.JsonParseFail",
)
TRANSIENT_PREFIXES = ("InternalError.", "LimitExceeded.", "RequestLimitExceeded.")
PULL_DAYS = 7
PULL_LIMIT = 100  # the API's largest page
PULL_PAGES = 50  # 5,000 receipts of one number in a week is far beyond any campaign


class TencentSms:
    """SMS through Tencent Cloud; ``codes`` maps each message kind to its TemplateId."""

    name = "tencent"
    #: Default frequency policy: the same content to one number ≤ 1 per 30 s, ≤ 10 per day.
    limits: tuple[Limit, ...] = (
        Limit("number+content", timedelta(seconds=30), 1),
        Limit("number+content", timedelta(days=1), 10),
    )
    #: Receipts come back from the carriers, usually within seconds, sometimes minutes.
    settle_after = timedelta(minutes=5)

    def __init__(
        self,
        secret_id: str,
        secret_key: str,
        sdk_app_id: str,
        sign_name: str,
        region: str = "ap-guangzhou",
        endpoint: str = "sms.tencentcloudapi.com",
        codes: Mapping[str, str] | None = None,
        *,
        timeout: float = 10.0,
        clock: Clock | None = None,
    ) -> None:
        scheme, host = split_endpoint(endpoint)
        http = HttpProfile(protocol=scheme, endpoint=host, reqTimeout=timeout)
        self._client = sms_client.SmsClient(
            credential.Credential(secret_id, secret_key), region, ClientProfile(httpProfile=http)
        )
        self.sdk_app_id = sdk_app_id
        self.sign_name = sign_name
        self.codes = dict(codes or {})
        self.clock = clock or SystemClock()
        quiet_sdk_loggers()

    def send(self, sms: OutgoingSms) -> str:
        request = models.SendSmsRequest()
        request.PhoneNumberSet = [e164(sms.phone)]
        request.SmsSdkAppId = self.sdk_app_id
        request.SignName = self.sign_name
        request.TemplateId = self._code(sms.kind)
        request.TemplateParamSet = self._ordered(sms)
        request.SessionContext = sms.out_id
        response = self._call(self._client.SendSms, request)
        statuses = response.SendStatusSet or []
        if not statuses:
            raise error_for("EmptyResponse", "no send status in the answer")
        status = statuses[0]
        if status.Code != "Ok":
            raise error_for(status.Code, status.Message)
        return str(status.SerialNo)

    def find(self, sms: OutgoingSms, since: datetime) -> str | None:
        now = self.clock.now()
        begin = int(max(since, now - timedelta(days=PULL_DAYS)).timestamp())
        for page in range(PULL_PAGES):
            request = models.PullSmsSendStatusByPhoneNumberRequest()
            request.BeginTime = begin
            request.EndTime = int(now.timestamp())
            request.Offset = page * PULL_LIMIT
            request.Limit = PULL_LIMIT
            request.PhoneNumber = e164(sms.phone)
            request.SmsSdkAppId = self.sdk_app_id
            response = self._call(self._client.PullSmsSendStatusByPhoneNumber, request)
            statuses = response.PullSmsSendStatusSet or []
            for status in statuses:
                if status.SessionContext == sms.out_id:
                    return str(status.SerialNo)
            if len(statuses) < PULL_LIMIT:
                return None
        raise error_for("InternalError", f"more than {PULL_PAGES * PULL_LIMIT} receipts")

    def _code(self, kind: str) -> str:
        code = self.codes.get(kind)
        if not code:
            raise PermanentProviderError(
                "TemplateNotApproved", f"no approved template for {kind}", provider=self.name
            )
        return code

    def _ordered(self, sms: OutgoingSms) -> list[str]:
        spec = KINDS.get(sms.kind)
        names = spec.sms_param_names if spec else tuple(sms.params)
        missing = [n for n in names if n not in sms.params]
        if missing:
            raise PermanentProviderError(
                "MissingTemplateParam", f"{sms.kind}: {', '.join(missing)}", provider=self.name
            )
        return [sms.params[n] for n in names]

    def _call(self, method: Any, request: Any) -> Any:
        try:
            return method(request)
        except TencentCloudSDKException as exc:
            code = str(exc.get_code() or "Unknown")
            # network failures carry the library's text (URLs, hosts): keep only the code
            detail = "" if code.endswith("NetworkError") else str(exc.get_message() or "")
            raise error_for(code, detail) from None
        except Exception as exc:  # an answer the SDK could not read
            raise error_for("InternalError", type(exc).__name__) from None


def error_for(code: str | None, message: str | None = "") -> ProviderError:
    """The error for a refusal Tencent Cloud answers with ``code``."""
    return classify(
        "tencent",
        code or "Unknown",
        message or "",
        transient_codes=TRANSIENT_CODES,
        transient_prefixes=TRANSIENT_PREFIXES,
    )
