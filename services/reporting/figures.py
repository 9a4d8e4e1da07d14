"""The figures leaders read (DOMAIN "Common report figures"), from the projections, as of
any instant.

A member's status is one thing wherever they count: reported in (≥1 confirmed
registration), dual-registered (unit and residence registrations confirmed), dual-paired
(≥1 active need pairing and ≥1 active project pairing), the five ones (verified records per
kind; the automatic wish and team records included, as pairing's progress counts them),
verified hours. A scope selects the members counting in it at that instant, each once.

``as_of`` is exclusive: the figures as of ``t`` include exactly the changes that occurred
before ``t``, so a half-open period ``[start, end)`` reads ``as_of=end``; ``None`` reads the
current state. Everything here is one grouped query per call, whatever the number of scopes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.sql import Subquery

from services.reporting.models import (
    MemberFact,
    MemberScope,
    MemberStatus,
    PairingState,
    Place,
    RecordFact,
    RegistrationState,
    Span,
    WishState,
)
from shared.config import CAMPAIGN_TZ, CITY
from shared.db import UnitOfWork

KINDS = ("home_visit", "community_activity", "policy_talk", "wish", "team")
WISH_STATES = (
    "collected",
    "pending_review",
    "published",
    "rejected",
    "withdrawn",
    "expired",
    "claimed",
    "fulfilled",
    "confirmed",
    "evaluated",
)
#: Wishes that were claimed and are still held or done (the claim-rate numerator).
CLAIMED = ("claimed", "fulfilled", "confirmed", "evaluated")
#: Wishes that reached publication (claimed ones included; withdrawn and expired were
#: published first).
PUBLISHED = ("published", "withdrawn", "expired", *CLAIMED)
#: Wishes fulfilled and confirmed by the community.
COMPLETED = ("confirmed", "evaluated")
CITY_NAME = "全市"
#: County-level divisions' names (DOMAIN, Luoyang 2016 and 2021); the directory's events
#: carry no district names, so these are the fallback (else the code is shown).
DISTRICT_NAMES = {
    "410302": "老城区",
    "410303": "西工区",
    "410304": "瀍河回族区",
    "410305": "涧西区",
    "410306": "吉利区",
    "410307": "偃师区",
    "410308": "孟津区",
    "410311": "洛龙区",
    "410322": "孟津县",
    "410323": "新安县",
    "410324": "栾川县",
    "410325": "嵩县",
    "410326": "汝阳县",
    "410327": "宜阳县",
    "410328": "洛宁县",
    "410329": "伊川县",
    "410381": "偃师市",
}


def _rate(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


@dataclass(frozen=True)
class Figures:
    """One scope's figures at one instant (counts; the rates are properties)."""

    scope: str
    name: str
    members: int = 0
    reported_in: int = 0
    dual_registered: int = 0
    dual_paired: int = 0
    five_ones_complete: int = 0
    five_ones: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    wishes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(WISH_STATES, 0))
    verified_hours: float = 0.0
    leading_cadres: int = 0
    leading_cadres_active: int = 0

    @property
    def code(self) -> str:
        return self.scope.split(":", 1)[1] if ":" in self.scope else CITY

    @property
    def wishes_published(self) -> int:
        return sum(self.wishes.get(s, 0) for s in PUBLISHED)

    @property
    def wishes_claimed(self) -> int:
        return sum(self.wishes.get(s, 0) for s in CLAIMED)

    @property
    def wishes_completed(self) -> int:
        return sum(self.wishes.get(s, 0) for s in COMPLETED)

    @property
    def reported_in_rate(self) -> float:
        """报到率: reported in ÷ members on the rosters."""
        return _rate(self.reported_in, self.members)

    @property
    def dual_registration_rate(self) -> float:
        """双注册率: dual-registered ÷ members on the rosters."""
        return _rate(self.dual_registered, self.members)

    @property
    def dual_pairing_rate(self) -> float:
        """对接率: dual-paired ÷ reported in."""
        return _rate(self.dual_paired, self.reported_in)

    @property
    def wish_claim_rate(self) -> float:
        """微心愿认领率: claimed (held or done) ÷ published."""
        return _rate(self.wishes_claimed, self.wishes_published)

    @property
    def wish_completion_rate(self) -> float:
        """微心愿完成率: fulfilled and confirmed ÷ claimed."""
        return _rate(self.wishes_completed, self.wishes_claimed)

    @property
    def five_ones_rate(self) -> float:
        """五个一完成率: all five verified ÷ reported in."""
        return _rate(self.five_ones_complete, self.reported_in)

    @property
    def cadre_rate(self) -> float:
        """领导干部参与率: leading cadres with ≥1 verified record ÷ leading cadres."""
        return _rate(self.leading_cadres_active, self.leading_cadres)

    RATES = (
        "reported_in_rate",
        "dual_registration_rate",
        "dual_pairing_rate",
        "wish_claim_rate",
        "wish_completion_rate",
        "five_ones_rate",
        "cadre_rate",
    )

    def as_dict(self) -> dict[str, Any]:
        """Counts, rates (4 decimals) and the wish funnel, JSON-ready."""
        data = asdict(self)
        data["verified_hours"] = round(self.verified_hours, 2)
        data["rates"] = {name: round(getattr(self, name), 4) for name in self.RATES}
        data["wish_funnel"] = {
            "published": self.wishes_published,
            "claimed": self.wishes_claimed,
            "completed": self.wishes_completed,
        }
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Figures:
        """The inverse of :meth:`as_dict` (rates and funnel are derived again)."""
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in names})


# --- the grouped queries -------------------------------------------------------------------


def _at(model: type[Span], as_of: datetime | None) -> ColumnElement[bool]:
    """The interval of ``model`` that holds just before ``as_of`` (or now)."""
    if as_of is None:
        return model.valid_to.is_(None)
    return and_(model.valid_from < as_of, or_(model.valid_to.is_(None), model.valid_to >= as_of))


def _flag(condition: ColumnElement[bool]) -> Any:
    return func.max(case((condition, 1), else_=0))


def members_at(scopes: list[str], as_of: datetime | None) -> Subquery:
    """(scope, member_id, is_leader_cadre) of the members counting in ``scopes``."""
    return (
        select(MemberScope.scope, MemberScope.member_id, MemberScope.is_leader_cadre)
        .where(MemberScope.scope.in_(scopes), _at(MemberScope, as_of))
        .subquery("ms")
    )


def verified_before(as_of: datetime | None) -> ColumnElement[bool]:
    verified = RecordFact.state == "verified"
    return verified if as_of is None else and_(verified, RecordFact.verified_at < as_of)


def _total(condition: Any) -> Any:
    return func.sum(case((condition, 1), else_=0))


def _live_figures(uow: UnitOfWork, scopes: list[str]) -> list[Any]:
    """The current figures, from each member's standing kept by the projections."""
    st = MemberStatus
    query = (
        select(
            MemberScope.scope,
            func.count().label("members"),
            _total(st.reported_in).label("reported_in"),
            _total(st.dual_registered).label("dual_registered"),
            _total(st.dual_paired).label("dual_paired"),
            _total(st.complete).label("five_ones_complete"),
            *[_total(getattr(st, k)).label(k) for k in KINDS],
            func.coalesce(func.sum(st.hours), 0).label("hours"),
            _total(MemberScope.is_leader_cadre).label("leading_cadres"),
            _total(and_(MemberScope.is_leader_cadre, st.verified_records > 0)).label(
                "cadres_active"
            ),
        )
        .select_from(MemberScope)
        .outerjoin(st, st.member_id == MemberScope.member_id)
        .where(MemberScope.scope.in_(scopes), MemberScope.valid_to.is_(None))
        .group_by(MemberScope.scope)
    )
    return list(uow.session.execute(query))


def _member_figures(uow: UnitOfWork, scopes: list[str], as_of: datetime | None) -> list[Any]:
    if as_of is None:
        return _live_figures(uow, scopes)
    ms = members_at(scopes, as_of)
    wanted = select(ms.c.member_id)
    confirmed = RegistrationState.state == "confirmed"
    reg = (
        select(
            RegistrationState.member_id,
            _flag(confirmed).label("reported"),
            _flag(and_(confirmed, RegistrationState.role == "unit")).label("unit_ok"),
            _flag(and_(confirmed, RegistrationState.role == "residence")).label("home_ok"),
        )
        .where(_at(RegistrationState, as_of), RegistrationState.member_id.in_(wanted))
        .group_by(RegistrationState.member_id)
        .subquery("reg")
    )
    pair = (
        select(
            PairingState.member_id,
            _flag(PairingState.kind == "need").label("need"),
            _flag(PairingState.kind == "project").label("project"),
        )
        .where(
            _at(PairingState, as_of),
            PairingState.state == "active",
            PairingState.member_id.in_(wanted),
        )
        .group_by(PairingState.member_id)
        .subquery("pair")
    )
    rec = (
        select(
            RecordFact.member_id,
            *[_flag(RecordFact.kind == k).label(k) for k in KINDS],
            func.sum(RecordFact.hours).label("hours"),
        )
        .where(verified_before(as_of), RecordFact.member_id.in_(wanted))
        .group_by(RecordFact.member_id)
        .subquery("rec")
    )

    complete = and_(*[rec.c[k] == 1 for k in KINDS])
    query = (
        select(
            ms.c.scope,
            func.count().label("members"),
            _total(reg.c.reported == 1).label("reported_in"),
            _total(and_(reg.c.unit_ok == 1, reg.c.home_ok == 1)).label("dual_registered"),
            _total(and_(pair.c.need == 1, pair.c.project == 1)).label("dual_paired"),
            _total(complete).label("five_ones_complete"),
            *[_total(rec.c[k] == 1).label(k) for k in KINDS],
            func.coalesce(func.sum(rec.c.hours), 0).label("hours"),
            _total(ms.c.is_leader_cadre).label("leading_cadres"),
            _total(and_(ms.c.is_leader_cadre, rec.c.member_id.is_not(None))).label("cadres_active"),
        )
        .select_from(ms)
        .outerjoin(reg, reg.c.member_id == ms.c.member_id)
        .outerjoin(pair, pair.c.member_id == ms.c.member_id)
        .outerjoin(rec, rec.c.member_id == ms.c.member_id)
        .group_by(ms.c.scope)
    )
    return list(uow.session.execute(query))


def _wish_counts(
    uow: UnitOfWork, scopes: list[str], as_of: datetime | None
) -> dict[str, dict[str, int]]:
    """Wishes by state: a community's, a district's and the city's by where the wish lives;
    a unit's are the wishes its members hold or fulfilled."""
    counts: dict[str, dict[str, int]] = {s: {} for s in scopes}
    places = [s for s in scopes if not s.startswith("unit:")]
    if places:
        rows = uow.session.execute(
            select(WishState.community_code, WishState.state, func.count())
            .where(_at(WishState, as_of))
            .group_by(WishState.community_code, WishState.state)
        )
        for community, state, n in rows:
            for scope in ("city", f"district:{community[:6]}", f"community:{community}"):
                if scope in counts:
                    counts[scope][state] = counts[scope].get(state, 0) + n
    units = [s for s in scopes if s.startswith("unit:")]
    if units:
        ms = members_at(units, as_of)
        rows = uow.session.execute(
            select(ms.c.scope, WishState.state, func.count(func.distinct(WishState.wish_id)))
            .join(ms, ms.c.member_id == WishState.member_id)
            .where(_at(WishState, as_of))
            .group_by(ms.c.scope, WishState.state)
        )
        for scope, state, n in rows:
            counts[scope][state] = n
    return counts


def names(uow: UnitOfWork, scopes: list[str]) -> dict[str, str]:
    """Display names of ``scopes`` (the directory's, a district's from DOMAIN, else the code)."""
    rows = uow.session.execute(select(Place.scope, Place.name).where(Place.scope.in_(scopes)))
    found = {scope: name for scope, name in rows}
    result = {}
    for scope in scopes:
        kind, _, code = scope.partition(":")
        fallback = CITY_NAME if kind == "city" else DISTRICT_NAMES.get(code, code)
        result[scope] = found.get(scope) or fallback
    return result


def figures_many(
    uow: UnitOfWork, scopes: list[str], as_of: datetime | None = None
) -> dict[str, Figures]:
    """The figures of every scope in ``scopes`` as of ``as_of``, in a few grouped queries."""
    scopes = list(dict.fromkeys(scopes))
    if not scopes:
        return {}
    label = names(uow, scopes)
    wishes = _wish_counts(uow, scopes, as_of)
    rows = {row.scope: row for row in _member_figures(uow, scopes, as_of)}
    result = {}
    for scope in scopes:
        row = rows.get(scope)
        by_state = {s: wishes[scope].get(s, 0) for s in WISH_STATES}
        by_state |= {s: n for s, n in wishes[scope].items() if s not in by_state}
        if row is None:
            result[scope] = Figures(scope=scope, name=label[scope], wishes=by_state)
            continue
        result[scope] = Figures(
            scope=scope,
            name=label[scope],
            members=int(row.members),
            reported_in=int(row.reported_in or 0),
            dual_registered=int(row.dual_registered or 0),
            dual_paired=int(row.dual_paired or 0),
            five_ones_complete=int(row.five_ones_complete or 0),
            five_ones={k: int(getattr(row, k) or 0) for k in KINDS},
            wishes=by_state,
            verified_hours=round(float(row.hours or 0), 2),
            leading_cadres=int(row.leading_cadres or 0),
            leading_cadres_active=int(row.cadres_active or 0),
        )
    return result


def figures(uow: UnitOfWork, scope: str, as_of: datetime | None = None) -> Figures:
    """One scope's figures as of ``as_of`` (exclusive; ``None``: now)."""
    return figures_many(uow, [scope], as_of)[scope]


# --- levels, rankings, lists ----------------------------------------------------------------


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
    the ranks are 1, 2, 3 … and the same every time for the same figures."""
    found = figures_many(uow, scopes, as_of)
    ordered = sorted(found.values(), key=lambda f: (-float(getattr(f, key)), f.code, f.scope))
    return [(n, f) for n, f in enumerate(ordered, start=1)]


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
