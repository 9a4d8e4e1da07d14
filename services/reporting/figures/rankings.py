"""Levels, rankings and lists for a report: the scopes one level down, ranked with ties
broken by code; leading cadres without a record; the "党员志愿者在行动" highlights; the
daily series of the cumulative progress line."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from sqlalchemy import func, select

from services.reporting.figures.queries import (
    figures,
    figures_many,
    members_at,
    names,
    verified_before,
)
from services.reporting.figures.values import Figures
from services.reporting.models import MemberFact, Place, RecordFact, WishState
from shared.config import CAMPAIGN_TZ, CITY
from shared.db import UnitOfWork


def children(uow: UnitOfWork, scope: str, kind: str | None = None) -> list[str]:
    """The scopes one level down, sorted by code.

    ``city`` → every district, then the city-level units (the two rankings DOMAIN asks for:
    by county/district and by city-level unit); ``district:D`` → its county-level units
    (``kind="community"``: its communities); ``unit:U`` → nothing; ``kind`` filters.
    """
    query = select(Place.scope, Place.kind, Place.code).order_by(Place.kind, Place.code)
    if scope == "city":
        districts = set(
            uow.session.scalars(select(Place.district).where(Place.kind != "district")).all()
        ) | {p.code for p in uow.session.scalars(select(Place).where(Place.kind == "district"))}
        found = [f"district:{d}" for d in sorted(districts - {CITY})]
        if kind in (None, "unit"):
            units = uow.session.scalars(
                select(Place.scope).where(Place.kind == "unit", Place.level == "city")
            )
            found += sorted(units)
        return [s for s in found if kind is None or s.startswith(kind + ":")]
    if scope.startswith("district:"):
        code = scope.split(":", 1)[1]
        wanted = kind or "unit"
        query = query.where(Place.kind == wanted, Place.district == code)
        if wanted == "unit":
            query = query.where(Place.level != "city")
        return [row.scope for row in uow.session.execute(query)]
    return []


def ranking(
    uow: UnitOfWork,
    scopes: list[str],
    as_of: datetime | None,
    key: str = "dual_pairing_rate",
) -> list[tuple[int, Figures]]:
    """``scopes`` ranked by ``key`` (a count or a rate), best first; ties broken by code, so
    the ranks are 1, 2, 3 … and the same every time for the same figures. A scope where the
    rate does not apply (``None``) comes last."""
    found = figures_many(uow, scopes, as_of)

    def order(f: Figures) -> tuple[bool, float, str, str]:
        value = getattr(f, key)
        return (value is None, -float(value or 0), f.code, f.scope)

    return list(enumerate(sorted(found.values(), key=order), start=1))


def cadres_without_record(
    uow: UnitOfWork, scope: str, as_of: datetime | None = None
) -> list[tuple[str, str, str]]:
    """Leading cadres counting in ``scope`` with no verified record before ``as_of``:
    (unit code, unit name, masked name), by unit then name."""
    ms = members_at([scope], as_of)
    done = select(RecordFact.member_id).where(
        verified_before(as_of), RecordFact.member_id == ms.c.member_id
    )
    rows = uow.session.execute(
        select(MemberFact.unit_code, MemberFact.name_masked, MemberFact.member_id)
        .join(ms, ms.c.member_id == MemberFact.member_id)
        .where(ms.c.is_leader_cadre, ~done.exists())
    ).all()
    units = names(uow, sorted({f"unit:{r.unit_code}" for r in rows}))
    listed = [
        (r.unit_code, units[f"unit:{r.unit_code}"], r.name_masked or "—", r.member_id) for r in rows
    ]
    return [(u, n, m) for u, n, m, _ in sorted(listed, key=lambda r: (r[0], r[2], str(r[3])))]


def highlights(
    uow: UnitOfWork, scope: str, start: datetime, end: datetime, limit: int = 5
) -> dict[str, list[tuple[str, str, float]]]:
    """党员志愿者在行动 — who served most in ``[start, end)``: verified hours (``hours``) and
    wishes fulfilled and confirmed (``wishes``), as (masked name, unit name, value)."""
    ms = members_at([scope], end)
    hours = (
        select(RecordFact.member_id, func.sum(RecordFact.hours).label("value"))
        .join(ms, ms.c.member_id == RecordFact.member_id)
        .where(
            RecordFact.state == "verified",
            RecordFact.verified_at >= start,
            RecordFact.verified_at < end,
            RecordFact.hours > 0,
        )
        .group_by(RecordFact.member_id)
    )
    wishes = (
        select(WishState.member_id, func.count(func.distinct(WishState.wish_id)).label("value"))
        .join(ms, ms.c.member_id == WishState.member_id)
        .where(
            WishState.state == "confirmed",
            WishState.valid_from >= start,
            WishState.valid_from < end,
        )
        .group_by(WishState.member_id)
    )
    result: dict[str, list[tuple[str, str, float]]] = {}
    for name, query in (("hours", hours), ("wishes", wishes)):
        found = uow.session.execute(query.subquery().select()).all()
        who = {
            m.member_id: m
            for m in uow.session.scalars(
                select(MemberFact).where(MemberFact.member_id.in_([r[0] for r in found]))
            )
        }
        ranked = sorted(found, key=lambda r: (-float(r[1]), str(r[0])))[:limit]
        units = names(uow, [f"unit:{who[r[0]].unit_code}" for r in ranked if r[0] in who])
        result[name] = [
            (
                (who[r[0]].name_masked if r[0] in who else None) or "—",
                units.get(f"unit:{who[r[0]].unit_code}", "") if r[0] in who else "",
                round(float(r[1]), 2),
            )
            for r in ranked
        ]
    return result


def day_end(day: date) -> datetime:
    """The instant a campaign day ends (midnight after it, Asia/Shanghai)."""
    return datetime.combine(day + timedelta(days=1), time(0), CAMPAIGN_TZ)


def daily_series(uow: UnitOfWork, scope: str, start: date, end: date) -> list[tuple[date, Figures]]:
    """The figures at the end of each day in ``[start, end)``: the daily snapshot where one
    was taken, computed as of the day's end where not (the cumulative progress line)."""
    from services.reporting.snapshots import stored

    kept = stored(uow, scope, start, end)
    series = []
    day = start
    while day < end:
        series.append((day, kept[day] if day in kept else figures(uow, scope, day_end(day))))
        day += timedelta(days=1)
    return series
