"""The rules applied when a message is about to go: quiet hours, daily caps, provider limits,
failover — their settings and the pure time arithmetic behind them.

All times are computed in ``Asia/Shanghai`` from the unit of work's clock (simulated in the
demo and the tests). Their settings (``SERVICEMONTH_NOTIFY_*``) come typed from
``settings.notify``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from shared.config import CAMPAIGN_TZ, Settings


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
        """The rules ``settings.notify`` holds (parsed and checked by ``shared.config``)."""
        own = settings.notify
        quiet_start, quiet_end = own.quiet_hours or (None, None)
        return cls(
            quiet_start,
            quiet_end,
            sms_daily_cap=own.sms_daily_cap,
            failover_after=own.failover_after,
            failover_cooldown=own.failover_cooldown,
            max_attempts=own.max_attempts,
            retry_delay=own.retry_delay,
            claim_warning=own.claim_warning,
            batch_at=own.batch_at,
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
