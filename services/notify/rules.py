"""The rules applied when a message is about to go: quiet hours, daily caps, provider limits,
failover — their settings and the pure time arithmetic behind them.

All times are computed in ``Asia/Shanghai`` from the unit of work's clock (simulated in the
demo and the tests). Settings are read here, once, from ``SERVICEMONTH_NOTIFY_*`` keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from shared.config import CAMPAIGN_TZ, ConfigError, Settings


@dataclass(frozen=True)
class Rules:
    """How notify paces its messages (see ``deploy/servicemonth.env.example``)."""

    quiet_start: time | None = time(20, 0)
    quiet_end: time | None = time(8, 0)
    sms_daily_cap: int = 2
    failover_after: int = 3
    failover_cooldown: timedelta = timedelta(minutes=5)
    max_attempts: int = 8
    retry_delay: float = 2.0
    claim_warning: timedelta = timedelta(hours=24)
    batch_at: time = time(17, 0)

    @classmethod
    def from_settings(cls, settings: Settings) -> Rules:
        return cls(
            *_quiet_hours(settings.get("NOTIFY_QUIET_HOURS", "notify")),
            sms_daily_cap=_int(
                settings.get("NOTIFY_SMS_DAILY_CAP", "notify"), "NOTIFY_SMS_DAILY_CAP", 2, 0
            ),
            failover_after=_int(
                settings.get("NOTIFY_FAILOVER_AFTER", "notify"), "NOTIFY_FAILOVER_AFTER", 3, 1
            ),
            failover_cooldown=timedelta(
                seconds=_int(
                    settings.get("NOTIFY_FAILOVER_COOLDOWN", "notify"),
                    "NOTIFY_FAILOVER_COOLDOWN",
                    300,
                    0,
                )
            ),
            max_attempts=_int(
                settings.get("NOTIFY_MAX_ATTEMPTS", "notify"), "NOTIFY_MAX_ATTEMPTS", 8, 1
            ),
            retry_delay=_float(
                settings.get("NOTIFY_RETRY_DELAY", "notify"), "NOTIFY_RETRY_DELAY", 2.0
            ),
            claim_warning=timedelta(
                hours=_int(
                    settings.get("NOTIFY_CLAIM_WARNING_HOURS", "notify"),
                    "NOTIFY_CLAIM_WARNING_HOURS",
                    24,
                    1,
                )
            ),
            batch_at=_clock_time(settings.get("NOTIFY_BATCH_AT", "notify"), "NOTIFY_BATCH_AT"),
        )

    def quiet_until(self, now: datetime) -> datetime | None:
        """The end of the quiet hours ``now`` falls in (UTC), or None outside them."""
        if self.quiet_start is None or self.quiet_end is None:
            return None
        local = now.astimezone(CAMPAIGN_TZ)
        t = local.timetz().replace(tzinfo=None)
        start, end = self.quiet_start, self.quiet_end
        inside = (start <= t or t < end) if start > end else (start <= t < end)
        if not inside:
            return None
        day = local.date() if t < end else local.date() + timedelta(days=1)
        return datetime.combine(day, end, CAMPAIGN_TZ).astimezone(now.tzinfo)

    def next_morning(self, now: datetime) -> datetime:
        """The next end of quiet hours after ``now`` (08:00 tomorrow by default)."""
        local = now.astimezone(CAMPAIGN_TZ)
        end = self.quiet_end or time(8, 0)
        day = local.date() + timedelta(days=1)
        return datetime.combine(day, end, CAMPAIGN_TZ).astimezone(now.tzinfo)

    def next_batch(self, now: datetime) -> datetime:
        """When today's batch goes (``batch_at``), or tomorrow's when it has gone."""
        local = now.astimezone(CAMPAIGN_TZ)
        due = datetime.combine(local.date(), self.batch_at, CAMPAIGN_TZ)
        if due <= local:
            due += timedelta(days=1)
        return due.astimezone(now.tzinfo)


def local_day(moment: datetime) -> date:
    """The campaign day (Asia/Shanghai) ``moment`` falls on."""
    return moment.astimezone(CAMPAIGN_TZ).date()


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """``[00:00, 24:00)`` of a campaign day, as aware datetimes."""
    start = datetime.combine(day, time(0, 0), CAMPAIGN_TZ)
    return start, start + timedelta(days=1)


def _quiet_hours(raw: str | None) -> tuple[time | None, time | None]:
    if raw is None:
        return time(20, 0), time(8, 0)
    if raw.strip().lower() in ("off", "none", "-"):
        return None, None
    match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", raw)
    if (
        not match
        or int(match[1]) > 23
        or int(match[3]) > 23
        or max(int(match[2]), int(match[4])) > 59
    ):
        raise ConfigError(
            f"SERVICEMONTH_NOTIFY_QUIET_HOURS: {raw!r} is not like 20:00-08:00 (or 'off')"
        )
    start, end = time(int(match[1]), int(match[2])), time(int(match[3]), int(match[4]))
    if start == end:
        return None, None
    return start, end


def _int(raw: str | None, key: str, default: int, minimum: int) -> int:
    if raw is None:
        return default
    if not re.fullmatch(r"\d{1,9}", raw.strip()) or int(raw) < minimum:
        raise ConfigError(f"SERVICEMONTH_{key}: {raw!r} is not a whole number ≥ {minimum}")
    return int(raw)


def _float(raw: str | None, key: str, default: float) -> float:
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 3600:
        raise ConfigError(f"SERVICEMONTH_{key}: {raw!r} is not a number of seconds (0-3600)")
    return value


def _clock_time(raw: str | None, key: str) -> time:
    match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", raw or "17:00")
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise ConfigError(f"SERVICEMONTH_{key}: {raw!r} is not a time of day like 17:00")
    return time(int(match[1]), int(match[2]))
