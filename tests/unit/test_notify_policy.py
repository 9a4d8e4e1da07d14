"""Notify's send policy as a table: plain facts in, one decision out (no database, no clock)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta

import pytest

from services.notify.channels.base import Limit
from services.notify.policy import (
    AskProviders,
    Decision,
    Facts,
    MergeIntoDigest,
    Message,
    NotDue,
    Provider,
    Reachable,
    RecentSms,
    Retry,
    SendEmail,
    SendSms,
    Skip,
    Wait,
    after_failure,
    backoff,
    decide,
    provider_order,
    stranded,
    too_long_for_sms,
)
from services.notify.rules import Rules
from shared.config import CAMPAIGN_TZ

MEMBER = uuid.UUID(int=1)
OTHER = uuid.UUID(int=2)
PHONE = "hmac-of-13812348000"


def local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2016, 7, day, hour, minute, tzinfo=CAMPAIGN_TZ).astimezone(UTC)


NOON = local(4, 12)
NIGHT = local(4, 23)
PER_HOUR = Limit("number", timedelta(hours=1), 1)

SMS = Message(kind="wish_confirmed", channel="sms", recipient_kind="member", member_id=MEMBER,
              phone_hmac=PHONE)  # fmt: skip
EMAIL = replace(SMS, channel="email")
PHONE_ONLY = Reachable(phone=True, email=False)
BOTH = Reachable(phone=True, email=True)
MAIL_ONLY = Reachable(phone=False, email=True)


def sms_at(at: datetime, *, provider: str = "aliyun", member: uuid.UUID = MEMBER) -> RecentSms:
    return RecentSms(member, None, PHONE, "sms", provider, "wish_confirmed", at)


def facts(**changes: object) -> Facts:
    base = Facts(
        message=SMS,
        recipient=PHONE_ONLY,
        now=NOON,
        rules=Rules(),
        providers=[Provider("aliyun"), Provider("tencent")],
    )
    return replace(base, **changes)  # type: ignore[arg-type]


CASES: list[tuple[str, Facts, Decision]] = [
    ("an SMS at noon goes through the first provider",
     facts(), SendSms("aliyun")),
    ("not due yet: left as it is",
     facts(message=replace(SMS, due_at=NOON + timedelta(minutes=1))), NotDue()),
    ("the recipient is gone: failed",
     facts(recipient=None), Skip("failed", error="no contact for the recipient")),
    ("tried before: the providers are asked first",
     facts(message=replace(SMS, tried=("aliyun",))), AskProviders()),
    ("tried before and asked: on with the rules, the provider that failed it last",
     facts(message=replace(SMS, tried=("aliyun",)), asked=True), SendSms("tencent")),
    ("SMS refused: opted out, never swapped for e-mail",
     facts(recipient=replace(BOTH, sms_enabled=False)), Skip("opted_out", detail="sms refused")),
    ("no mobile: by e-mail instead",
     facts(recipient=MAIL_ONLY), SendEmail("by e-mail: sms unavailable")),
    ("queued for e-mail: by e-mail, at night too",
     facts(message=EMAIL, recipient=BOTH, now=NIGHT), SendEmail(None)),
    ("e-mail refused and no way else: opted out",
     facts(message=EMAIL, recipient=Reachable(phone=False, email=True, email_enabled=False)),
     Skip("opted_out", detail="email refused")),
    ("e-mail queued, no address: by SMS",
     facts(message=EMAIL, recipient=PHONE_ONLY), SendSms("aliyun")),
    ("quiet hours: deferred to 08:00",
     facts(now=NIGHT), Wait(local(5, 8), f"quiet hours until {local(5, 8).isoformat()}")),
    ("urgent goes through the quiet hours",
     facts(message=replace(SMS, urgent=True), now=NIGHT), SendSms("aliyun")),
    ("quiet hours switched off",
     facts(now=NIGHT, rules=Rules(quiet_start=None, quiet_end=None)), SendSms("aliyun")),
    ("two SMS today already: into the digest",
     facts(recent=[sms_at(local(4, 9)), sms_at(local(4, 10))]), MergeIntoDigest()),
    ("urgent or not, the cap holds",
     facts(message=replace(SMS, urgent=True), recent=[sms_at(local(4, 9)), sms_at(local(4, 10))]),
     MergeIntoDigest()),
    ("yesterday's SMS do not count",
     facts(recent=[sms_at(local(3, 21)), sms_at(local(3, 22))]), SendSms("aliyun")),
    ("another member's SMS do not count",
     facts(recent=[sms_at(local(4, 9), member=OTHER), sms_at(local(4, 10), member=OTHER)]),
     SendSms("aliyun")),
    ("the cap switched off",
     facts(rules=Rules(sms_daily_cap=0), recent=[sms_at(local(4, 9)), sms_at(local(4, 10))]),
     SendSms("aliyun")),
    ("a digest is never capped",
     facts(message=replace(SMS, kind="digest"), recent=[sms_at(local(4, 9)), sms_at(local(4, 10))]),
     SendSms("aliyun")),
    ("a report subscriber has no cap",
     facts(message=replace(SMS, recipient_kind="sealed", member_id=None),
           recent=[sms_at(local(4, 9)), sms_at(local(4, 10))]), SendSms("aliyun")),
    ("the first provider's per-number limit is reached: the second",
     facts(providers=[Provider("aliyun", (PER_HOUR,)), Provider("tencent", (PER_HOUR,))],
           recent=[sms_at(NOON - timedelta(minutes=10))]), SendSms("tencent")),
    ("every provider's limit, freeing within the hour: wait for the soonest",
     facts(providers=[Provider("aliyun", (PER_HOUR,))],
           recent=[sms_at(NOON - timedelta(minutes=10))]),
     Wait(NOON + timedelta(minutes=50),
          f"provider limits until {(NOON + timedelta(minutes=50)).isoformat()}")),
    ("every provider's limit, freeing later than that: rate limited",
     facts(providers=[Provider("aliyun", (Limit("number", timedelta(days=1), 1),))],
           recent=[sms_at(NOON - timedelta(minutes=10))]),
     Skip("rate_limited", detail="every provider's limit reached")),
    ("a limit per template counts that kind only",
     facts(providers=[Provider("aliyun", (Limit("number+template", timedelta(hours=1), 1),))],
           recent=[replace(sms_at(NOON - timedelta(minutes=10)), kind="welcome")]),
     SendSms("aliyun")),
    ("a provider cooling down after failures goes last",
     facts(providers=[Provider("aliyun", cooling_until=NOON + timedelta(minutes=5)),
                      Provider("tencent")]), SendSms("tencent")),
    ("a cool-down that is over counts no more",
     facts(providers=[Provider("aliyun", cooling_until=NOON - timedelta(minutes=1)),
                      Provider("tencent")]), SendSms("aliyun")),
    ("no provider at all: rate limited",
     facts(providers=[]), Skip("rate_limited", detail="every provider's limit reached")),
]  # fmt: skip


@pytest.mark.parametrize(("case", "given", "expected"), CASES, ids=[c[0] for c in CASES])
def test_the_policy_decides(case: str, given: Facts, expected: Decision) -> None:
    assert decide(given) == expected


def test_failover_order_is_healthy_first_then_by_failures_on_this_message() -> None:
    providers = [Provider("a"), Provider("b", cooling_until=NOON + timedelta(1)), Provider("c")]
    order = provider_order(replace(SMS, tried=("a", "a", "c")), providers, NOON)
    assert [p.name for p in order] == ["c", "a", "b"]


@pytest.mark.parametrize(
    ("attempts", "permanent", "expected"),
    [
        (1, False, Retry(NOON + timedelta(seconds=2))),
        (3, False, Retry(NOON + timedelta(seconds=8))),
        (1, True, Skip("failed")),
        (8, False, Skip("failed")),  # the attempts are spent
    ],
)
def test_after_a_failed_call(attempts: int, permanent: bool, expected: Retry | Skip) -> None:
    assert after_failure(attempts, permanent=permanent, now=NOON, rules=Rules()) == expected


def test_the_backoff_doubles_up_to_five_minutes() -> None:
    assert [backoff(Rules(), n) for n in (1, 2, 3)] == [2.0, 4.0, 8.0]
    assert backoff(Rules(), 30) == 300.0


def test_an_sms_too_long_goes_by_e_mail_when_it_can() -> None:
    assert too_long_for_sms(BOTH, "4 segments") == SendEmail("by e-mail: 4 segments")
    assert too_long_for_sms(PHONE_ONLY, "4 segments") == Skip("failed", error="4 segments")


def test_a_sending_message_is_stranded_after_two_minutes() -> None:
    assert not stranded(NOON - timedelta(minutes=1), NOON)
    assert stranded(NOON - timedelta(minutes=3), NOON)
    assert stranded(None, NOON)


def test_quiet_hours_of_the_rules_are_the_policy_s() -> None:
    lunch = Rules(quiet_start=time(12, 0), quiet_end=time(14, 0))
    assert decide(facts(rules=lunch)) == Wait(
        local(4, 14), f"quiet hours until {local(4, 14).isoformat()}"
    )
