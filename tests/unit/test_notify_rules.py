"""Notify's send-time rules as pure functions: quiet hours, batches, channel choice, settings."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from services.notify.messages import Reach, choose_channel
from services.notify.rules import Rules
from shared.config import CAMPAIGN_TZ, ConfigError, load


def local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2016, 7, day, hour, minute, tzinfo=CAMPAIGN_TZ).astimezone(UTC)


@pytest.mark.parametrize(
    ("now", "until"),
    [
        (local(4, 22), local(5, 8)),
        (local(5, 1), local(5, 8)),
        (local(4, 20), local(5, 8)),
        (local(5, 7, 59), local(5, 8)),
        (local(5, 8), None),
        (local(4, 19, 59), None),
    ],
)
def test_quiet_hours_end_at_the_next_08_00(now: datetime, until: datetime | None) -> None:
    assert Rules().quiet_until(now) == until


def test_quiet_hours_inside_one_day_and_off() -> None:
    lunch = Rules(quiet_start=time(12, 0), quiet_end=time(14, 0))
    assert lunch.quiet_until(local(4, 13)) == local(4, 14)
    assert lunch.quiet_until(local(4, 22)) is None
    assert Rules(quiet_start=None, quiet_end=None).quiet_until(local(4, 23)) is None


def test_the_next_batch_is_today_until_it_has_gone() -> None:
    assert Rules().next_batch(local(4, 9)) == local(4, 17)
    assert Rules().next_batch(local(4, 17)) == local(5, 17)


def test_the_digest_goes_next_morning() -> None:
    assert Rules().next_morning(local(4, 15)) == local(5, 8)


def reach(phone: bool = True, email: bool = True, sms_ok: bool = True) -> Reach:
    return Reach(
        "138****8000" if phone else None,
        "h" if phone else None,
        "z***@example.cn" if email else None,
        sms_ok,
        True,
        known=True,
    )


def test_sms_to_a_mobile_e_mail_without_one_or_when_sms_is_refused() -> None:
    assert choose_channel("welcome", reach()) == "sms"
    assert choose_channel("welcome", reach(phone=False)) == "email"
    assert choose_channel("welcome", reach(sms_ok=False)) == "email"
    assert choose_channel("welcome", reach(phone=False, email=False)) is None
    assert choose_channel("report_ready", reach()) == "email"
    assert choose_channel("report_ready", reach(email=False)) == "sms"


def test_settings_are_read_and_a_bad_value_names_its_key() -> None:
    rules = Rules.from_settings(
        load(
            {
                "SERVICEMONTH_NOTIFY_QUIET_HOURS": "21:30-07:00",
                "SERVICEMONTH_NOTIFY_SMS_DAILY_CAP": "3",
            }
        )
    )
    assert (rules.quiet_start, rules.quiet_end, rules.sms_daily_cap) == (
        time(21, 30),
        time(7, 0),
        3,
    )
    assert Rules.from_settings(load({"SERVICEMONTH_NOTIFY_QUIET_HOURS": "off"})).quiet_start is None
    for key, value in (
        ("NOTIFY_QUIET_HOURS", "late"),
        ("NOTIFY_SMS_DAILY_CAP", "-1"),
        ("NOTIFY_RETRY_DELAY", "soon"),
        ("NOTIFY_BATCH_AT", "25:00"),
    ):
        with pytest.raises(ConfigError, match=key):
            Rules.from_settings(load({f"SERVICEMONTH_{key}": value}))
