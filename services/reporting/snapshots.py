"""Daily snapshots: every scope's figures as of each finished campaign day (Asia/Shanghai).

A snapshot is what was known when the day was over; the trend line reads them
(:func:`daily_series`), and a missing day is computed instead. The sweep is idempotent: a
(scope, day) is written once, so two sweeps never disagree.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from services.reporting.figures import Figures, children, figures, figures_many
from services.reporting.models import DailySnapshot, MemberScope, Place
from shared.config import CAMPAIGN_TZ
from shared.db import UnitOfWork
from shared.runtime import Runtime


def day_end(day: date) -> datetime:
    """The instant a campaign day ends (midnight after it, Asia/Shanghai)."""
    return datetime.combine(day + timedelta(days=1), time(0), CAMPAIGN_TZ)


def stored(uow: UnitOfWork, scope: str, start: date, end: date) -> dict[date, Figures]:
    """The snapshots of ``scope`` for the days in ``[start, end)``."""
    rows = uow.session.scalars(
        select(DailySnapshot).where(
            DailySnapshot.scope == scope, DailySnapshot.day >= start, DailySnapshot.day < end
        )
    )
    return {row.day: Figures.from_dict(dict(row.figures)) for row in rows}


def daily_series(uow: UnitOfWork, scope: str, start: date, end: date) -> list[tuple[date, Figures]]:
    """The figures at the end of each day in ``[start, end)``: the daily snapshot where one
    was taken, computed as of the day's end where not (the cumulative progress line)."""
    kept = stored(uow, scope, start, end)
    series = []
    day = start
    while day < end:
        series.append((day, kept[day] if day in kept else figures(uow, scope, day_end(day))))
        day += timedelta(days=1)
    return series


def all_scopes(uow: UnitOfWork) -> list[str]:
    """Every scope that has a name or a member: the city, districts, units, communities."""
    known = set(uow.session.scalars(select(Place.scope)))
    known |= set(uow.session.scalars(select(MemberScope.scope).distinct()))
    known |= set(children(uow, "city", "district"))
    return ["city", *sorted(known - {"city"})]


def finished_days(first: date, last: date, now: datetime) -> list[date]:
    """Campaign days from ``first`` to ``last`` whose end (Shanghai midnight) has passed."""
    days = []
    day = first
    while day <= last and day_end(day) <= now:
        days.append(day)
        day += timedelta(days=1)
    return days


def snapshot_day(uow: UnitOfWork, day: date, missing: list[str]) -> int:
    """Write the snapshots of ``day`` for the scopes in ``missing``; how many."""
    found = figures_many(uow, missing, day_end(day))
    now = uow.now()
    uow.session.add_all(
        DailySnapshot(scope=s, day=day, figures=found[s].as_dict(), taken_at=now) for s in missing
    )
    return len(missing)


def sweep(rt: Runtime, now: datetime | None = None) -> int:
    """Snapshot every finished campaign day not yet snapshotted (one transaction per day
    that misses a scope); returns how many snapshots were written. Safe to run from two
    places at once."""
    now = now or rt.clock.now()
    days = finished_days(rt.settings.campaign_start, rt.settings.campaign_end, now)
    if not days:
        return 0
    with rt.uow() as uow:
        scopes = all_scopes(uow)
        have = set(
            uow.session.execute(
                select(DailySnapshot.day, DailySnapshot.scope).where(
                    DailySnapshot.day >= days[0], DailySnapshot.day <= days[-1]
                )
            ).tuples()
        )
    written = 0
    for day in days:
        missing = [s for s in scopes if (day, s) not in have]
        if not missing:
            continue
        with rt.uow() as uow:
            try:
                written += snapshot_day(uow, day, missing)
                uow.commit()
            except IntegrityError:
                continue  # another sweep wrote this day first
    return written
