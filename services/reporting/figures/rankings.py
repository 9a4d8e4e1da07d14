"""Levels, rankings and lists for a report: the directory's tree of places, the scopes one
level down ranked with ties broken by code; leading cadres without a record; the
"党员志愿者在行动" highlights."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, select

from services.reporting.figures.queries import figures_many, members_at, names, verified_before
from services.reporting.figures.values import Figures
from services.reporting.models import MemberFact, Place, RecordFact, WishState
from shared.config import CITY
from shared.db import UnitOfWork


class Places:
    """The directory's tree, read once (:func:`places`): which scopes lie one level down."""

    def __init__(self, rows: Iterable[tuple[str, str, str, str, str | None]]) -> None:
        """``rows``: (scope, kind, code, district, level), ordered by kind then code."""
        districts: set[str] = set()
        city_units: list[str] = []
        self._below: dict[tuple[str, str], list[str]] = defaultdict(list)
        for scope, kind, code, district, level in rows:
            districts.add(code if kind == "district" else district)
            if kind == "unit" and level == "city":
                city_units.append(scope)
            # a unit counts under its district unless it is city-level (or has no level)
            if kind != "unit" or (level is not None and level != "city"):
                self._below[(district, kind)].append(scope)
        self._districts = [f"district:{d}" for d in sorted(districts - {CITY})]
        self._city_units = sorted(city_units)

    def children(self, scope: str, kind: str | None = None) -> list[str]:
        """The scopes one level down, sorted by code.

        ``city`` → every district, then the city-level units (the two rankings the campaign asks
        for: by county/district and by city-level unit); ``district:D`` → its county-level
        units (``kind="community"``: its communities); ``unit:U`` → nothing; ``kind``
        filters.
        """
        if scope == "city":
            found = list(self._districts)
            if kind in (None, "unit"):
                found += self._city_units
            return [s for s in found if kind is None or s.startswith(kind + ":")]
        if scope.startswith("district:"):
            return list(self._below.get((scope.split(":", 1)[1], kind or "unit"), []))
        return []


def places(uow: UnitOfWork) -> Places:
    """The directory's places, in one query."""
    rows = uow.session.execute(
        select(Place.scope, Place.kind, Place.code, Place.district, Place.level).order_by(
            Place.kind, Place.code
        )
    ).tuples()
    return Places(rows)


def children(uow: UnitOfWork, scope: str, kind: str | None = None) -> list[str]:
    """:meth:`Places.children`, read from the directory."""
    return places(uow).children(scope, kind)


def rank(found: Iterable[Figures], key: str = "dual_pairing_rate") -> list[tuple[int, Figures]]:
    """``found`` ranked by ``key`` (a count or a rate), best first; ties broken by code, so
    the ranks are 1, 2, 3 … and the same every time for the same figures. A scope where the
    rate does not apply (``None``) comes last."""

    def order(f: Figures) -> tuple[bool, float, str, str]:
        value = getattr(f, key)
        return (value is None, -float(value or 0), f.code, f.scope)

    return list(enumerate(sorted(found, key=order), start=1))


def ranking(
    uow: UnitOfWork,
    scopes: list[str],
    as_of: datetime | None,
    key: str = "dual_pairing_rate",
) -> list[tuple[int, Figures]]:
    """``scopes``' figures as of ``as_of``, :func:`rank`\\ ed by ``key``."""
    return rank(figures_many(uow, scopes, as_of).values(), key)


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
    wishes fulfilled and confirmed (``wishes``), as (masked name, unit name, value); the
    most first, ties by member id."""
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
    top = {}
    for name, query in (("hours", hours), ("wishes", wishes)):
        served = query.subquery()
        top[name] = uow.session.execute(
            select(served.c.value, MemberFact.name_masked, MemberFact.unit_code)
            .select_from(served)
            .outerjoin(MemberFact, MemberFact.member_id == served.c.member_id)
            .order_by(served.c.value.desc(), served.c.member_id)
            .limit(limit)
        ).all()
    held = {r.unit_code for rows in top.values() for r in rows if r.unit_code is not None}
    units = names(uow, sorted(f"unit:{code}" for code in held))
    return {
        name: [
            (
                r.name_masked or "—",
                units[f"unit:{r.unit_code}"] if r.unit_code is not None else "",
                round(float(r.value), 2),
            )
            for r in rows
        ]
        for name, rows in top.items()
    }
