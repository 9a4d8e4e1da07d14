"""Aliyun SMS (dysmsapi 2017-05-25) through its official SDK.

Sends an approved template: ``SendSms(PhoneNumbers, SignName, TemplateCode, TemplateParam,
OutId)``; the answer's ``BizId`` is the reference. ``find`` reconciles a send cut short by
looking for our OutId in ``QuerySendDetails`` for the number, day by day (Aliyun keeps 30
days). Those records carry no BizId, so a reconciled send's reference is ``out:<out-id>``;
Aliyun's delivery receipts carry the OutId as well. A send is listed there as soon as it is
accepted (status "waiting for receipt"), so a minute settles it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from alibabacloud_dysmsapi20170525 import models as sms_models
from alibabacloud_dysmsapi20170525.client import Client
from alibabacloud_tea_openapi import models as openapi_models
from darabonba.exceptions import ResponseException
from darabonba.runtime import RuntimeOptions

from services.notify.channels.base import (
    Limit,
    OutgoingSms,
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
)
from services.notify.channels.sdk import classify, quiet_sdk_loggers, split_endpoint
from shared.clock import Clock, SystemClock
from shared.config import CAMPAIGN_TZ
from shared.pii import national_mobile

#: Refusals that may pass: flow control, balance, the provider's own faults.
TRANSIENT_CODES = (
    "isv.BUSINESS_LIMIT_CONTROL",
    "isv.DAY_LIMIT_CONTROL",
    "isv.OUT_OF_SERVICE",
    "isv.AMOUNT_NOT_ENOUGH",
    "isv.DATA_NOT_EXIST",
    "isv.BILLING_DEDUCTION_ERROR",
    "isv.SYSTEM_ERROR",
    "ServiceUnavailable",
    "InternalError",
)
TRANSIENT_PREFIXES = ("isp.", "Throttling", "isv.BUSINESS_LIMIT", "BUSINESS_LIMIT")
PAGE_SIZE = 50
HISTORY_DAYS = 30


class AliyunSms:
    """SMS through Aliyun; ``codes`` maps each message kind to its approved TemplateCode."""

    name = "aliyun"
    #: Notifications: ≤ 50 per signature and template to one number in a rolling 24 h.
    limits: tuple[Limit, ...] = (Limit("number+template", timedelta(hours=24), 50),)
    settle_after = timedelta(minutes=1)

    def __init__(
        self,
        access_key_id: str,
        access_key_secret: str,
        sign_name: str,
        endpoint: str = "dysmsapi.aliyuncs.com",
        codes: Mapping[str, str] | None = None,
        *,
        timeout: float = 10.0,
        clock: Clock | None = None,
    ) -> None:
        scheme, host = split_endpoint(endpoint)
        config = openapi_models.Config(
            access_key_id=access_key_id,
            access_key_secret=access_key_secret,
            endpoint=host,
            protocol=scheme,
            connect_timeout=int(timeout * 1000),
            read_timeout=int(timeout * 1000),
        )
        self._client = Client(config)
        self.sign_name = sign_name
        self.codes = dict(codes or {})
        self.clock = clock or SystemClock()
        quiet_sdk_loggers()

    def send(self, sms: OutgoingSms) -> str:
        code = self.codes.get(sms.kind)
        if not code:
            raise PermanentProviderError(
                "TemplateNotApproved", f"no approved template for {sms.kind}", provider=self.name
            )
        request = sms_models.SendSmsRequest(
            phone_numbers=national_mobile(sms.phone),
            sign_name=self.sign_name,
            template_code=code,
            template_param=json.dumps(sms.params, ensure_ascii=False),
            out_id=sms.out_id,
        )
        body = self._call(self._client.send_sms_with_options, request)
        if body.code != "OK":
            raise error_for(body.code, body.message)
        return str(body.biz_id)

    def find(self, sms: OutgoingSms, since: datetime) -> str | None:
        today = self.clock.now().astimezone(CAMPAIGN_TZ).date()
        day = max(since.astimezone(CAMPAIGN_TZ).date(), today - timedelta(days=HISTORY_DAYS - 1))
        while day <= today:
            page = 1
            while True:
                request = sms_models.QuerySendDetailsRequest(
                    phone_number=national_mobile(sms.phone),
                    send_date=day.strftime("%Y%m%d"),
                    page_size=PAGE_SIZE,
                    current_page=page,
                )
                body = self._call(self._client.query_send_details_with_options, request)
                if body.code != "OK":
                    raise error_for(body.code, body.message)
                holder = body.sms_send_detail_dtos
                details = (holder.sms_send_detail_dto if holder else None) or []
                if any(d.out_id == sms.out_id for d in details):
                    return f"out:{sms.out_id}"
                if len(details) < PAGE_SIZE:
                    break
                page += 1
            day += timedelta(days=1)
        return None

    def _call(self, method: Any, request: Any) -> Any:
        try:
            return method(request, RuntimeOptions(autoretry=False)).body
        except ResponseException as exc:  # an HTTP error answer, parsed by the SDK
            status = exc.status_code or 0
            if status >= 500 or exc.name == "ThrottlingException":
                raise TransientProviderError(
                    str(exc.code or status), str(exc.message or ""), provider=self.name
                ) from None
            raise error_for(str(exc.code), str(exc.message or "")) from None
        except Exception as exc:  # timeouts, refused connections, unreadable answers
            raise TransientProviderError(
                "NetworkError", _describe(exc), provider=self.name
            ) from None


def _describe(exc: BaseException) -> str:
    """The failure's kind, not its text: request URLs (with numbers in them) stay out."""
    inner = getattr(exc, "inner_exception", None)
    if isinstance(inner, BaseException):
        return f"{type(exc).__name__}: {type(inner).__name__}"
    return type(exc).__name__


def error_for(code: str | None, message: str | None = "") -> ProviderError:
    """The error for a refusal Aliyun answers with ``code``."""
    return classify(
        "aliyun",
        code or "Unknown",
        message or "",
        transient_codes=TRANSIENT_CODES,
        transient_prefixes=TRANSIENT_PREFIXES,
    )
