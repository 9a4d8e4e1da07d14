"""定期报告订阅 — a leader's subscription, its calendar and the periods its slots cover.

A schedule is a cron expression read in ``Asia/Shanghai`` or a named campaign default:

- ``campaign``: weekly on Monday 08:30, daily at 08:30 in the last week, and a final
  report the day after the close;
- ``weekly``: Mondays 08:30 only; ``final``: the final report only.

Each regular slot reports the half-open period ``[previous slot, this slot)``, the first
from the campaign start; the final report covers the whole campaign ``[start, close)``.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from apscheduler.triggers.cron import CronTrigger

from services.reporting.access import visible
from services.reporting.models import Subscription
from services.reporting.schemas import SubscriptionIn
from services.reporting.snapshots import day_end
from shared.auth import Principal
from shared.config import CAMPAIGN_TZ, Settings
from shared.db import UnitOfWork
from shared.events import SealedContact
from shared.http import Invalid, NotFound
from shared.pii import Sealer, mask_email, mask_name, mask_phone

NAMED = ("campaign", "weekly", "final")
REPORT_TIME = time(8, 30)
#: A calendar that fires more often than this in one campaign is refused (it would flood).
MAX_SLOTS = 400


@dataclass(frozen=True)
class Slot:
    """One firing of a calendar and the half-open period its report covers (UTC)."""

    at: datetime
    start: datetime
    end: datetime
    final: bool = False


def campaign_window(settings: Settings) -> tuple[datetime, datetime]:
    """The campaign as ``[start, close)``: midnight of the first day to midnight after the last."""
    return _window(settings.campaign_start, settings.campaign_end)


def _window(first: date, last: date) -> tuple[datetime, datetime]:
    start = datetime.combine(first, time(0), CAMPAIGN_TZ)
    return start.astimezone(UTC), day_end(last).astimezone(UTC)


def _local(day: date) -> datetime:
    return datetime.combine(day, REPORT_TIME, CAMPAIGN_TZ).astimezone(UTC)


_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _weekday_names(field: str) -> str:
    """Crontab's numbered weekdays (0 or 7 = Sunday) as names: APScheduler 3 counts from
    Monday, so ``1-5`` would otherwise mean Tuesday to Saturday."""

    def one(part: str) -> str:
        days, slash, step = part.partition("/")
        low, dash, high = days.partition("-")
        if not low.isdigit() or int(low) > 7 or (high and (not high.isdigit() or int(high) > 7)):
            return part
        if dash and int(low) == 0:
            rest = f"mon-{_DAYS[int(high)]}" if int(high) > 1 else "mon"
            return f"sun,{rest}" if int(high) >= 1 else "sun"
        named = _DAYS[int(low)] + (f"-{_DAYS[int(high)]}" if dash else "")
        return named + slash + step

    return ",".join(one(p) for p in field.split(","))


def cron_trigger(expr: str) -> CronTrigger:
    """APScheduler's reading of a five-field crontab (standard weekday numbers) in the
    campaign's time zone."""
    fields = expr.split()
    if len(fields) == 5:
        fields[4] = _weekday_names(fields[4])
    return CronTrigger.from_crontab(" ".join(fields), timezone=CAMPAIGN_TZ)


def _named_times(schedule: str, first: date, last: date) -> tuple[list[datetime], datetime | None]:
    days = [first + timedelta(days=n) for n in range(1, (last - first).days + 1)]
    times: set[datetime] = set()
    if schedule in ("campaign", "weekly"):
        times |= {_local(d) for d in days if d.weekday() == 0}
    if schedule == "campaign":
        times |= {_local(d) for d in days if d >= last - timedelta(days=6)}
    return sorted(times), _local(last + timedelta(days=1))


def _cron_times(expr: str, first: date, last: date) -> list[datetime]:
    trigger = cron_trigger(expr)
    start, close = _window(first, last)
    until = close + timedelta(days=1)
    times: list[datetime] = []
    previous: datetime | None = None
    now = start + timedelta(seconds=1)
    while (fire := trigger.get_next_fire_time(previous, now)) is not None and fire <= until:
        times.append(fire.astimezone(UTC))
        if len(times) > MAX_SLOTS:
            raise ValueError(f"fires more than {MAX_SLOTS} times in the campaign")
        previous, now = fire, fire + timedelta(seconds=1)
    return times


def slots(schedule: str, settings: Settings) -> list[Slot]:
    """Every slot of ``schedule`` in the campaign, in time order, with its period."""
    return list(_slots(schedule, settings.campaign_start, settings.campaign_end))


@functools.lru_cache(maxsize=256)
def _slots(schedule: str, first: date, last: date) -> tuple[Slot, ...]:
    """:func:`slots`, worked out once per calendar and campaign (every tick asks again)."""
    start, close = _window(first, last)
    if schedule in NAMED:
        times, final_at = _named_times(schedule, first, last)
    else:
        times, final_at = _cron_times(schedule, first, last), None
    result: list[Slot] = []
    previous = start
    for at in times:
        if at > start:
            result.append(Slot(at, previous, at))
            previous = at
    if final_at is not None:
        result.append(Slot(final_at, start, close, final=True))
    return tuple(sorted(result, key=lambda s: (s.at, s.final)))


def check_schedule(schedule: str, settings: Settings) -> str:
    """``schedule`` if it is a named default or a valid crontab; ValueError saying why."""
    schedule = " ".join(schedule.split())
    if schedule in NAMED:
        return schedule
    try:
        found = slots(schedule, settings)
    except ValueError as exc:
        raise ValueError(
            f"not a cron expression (minute hour day month weekday) or one of "
            f"{', '.join(NAMED)}: {exc}"
        ) from None
    if not found:
        raise ValueError("never fires during the campaign")
    return schedule


def subscribe(
    uow: UnitOfWork,
    body: SubscriptionIn,
    who: Principal,
    sealer: Sealer,
    settings: Settings,
) -> Subscription:
    """Record a subscription (the caller commits). A scope the caller may not read
    (:func:`~services.reporting.access.visible`) answers 404."""
    errors: list[dict[str, str]] = []
    try:
        schedule = check_schedule(body.schedule, settings)
    except ValueError as exc:
        errors.append({"field": "schedule", "message": str(exc)})
    if "email" in body.channels and not body.email:
        errors.append({"field": "email", "message": "the email channel needs an e-mail address"})
    if "sms" in body.channels and not body.phone:
        errors.append({"field": "phone", "message": "the sms channel needs a mobile number"})
    if errors:
        raise Invalid("the subscription has invalid fields", errors)
    if not visible(uow, who, body.scope):
        raise NotFound(f"no scope {body.scope} here")
    sub = Subscription(
        id=uuid.uuid4(),
        scope=body.scope,
        schedule=schedule,
        channels=",".join(sorted(set(body.channels))),
        formats=",".join(sorted(set(body.formats))),
        name_masked=mask_name(body.name),
        email_masked=mask_email(body.email) if body.email else None,
        phone_masked=mask_phone(body.phone) if body.phone else None,
        contact_sealed=SealedContact.seal(sealer, body.name, body.phone, body.email),
        created_at=uow.now(),
        created_by=who.token_id,
    )
    uow.session.add(sub)
    return sub


def recipient(sub: Subscription) -> SealedContact:
    """The subscriber's contact as notify opens it (sealed at rest, passed on sealed)."""
    return SealedContact(sealed=sub.contact_sealed, phone_masked=sub.phone_masked)
