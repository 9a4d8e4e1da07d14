"""The grouped queries behind the figures: any number of scopes, as of any instant, in a
few queries (members and their standing, wishes, names).

``as_of`` is exclusive: the figures as of ``t`` include exactly the changes that occurred
before ``t``; ``None`` reads the current state — each member's standing kept by the
projections (``member_status``) instead of the histories.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.sql import FromClause, Subquery

from services.reporting.figures.values import (
    CITY_NAME,
    DISTRICT_NAMES,
    KINDS,
    WISH_STATES,
    Figures,
)
from services.reporting.models import (
    MemberScope,
    MemberStatus,
    PairingState,
    Place,
    RecordFact,
    RegistrationState,
    Span,
    WishState,
)
from shared.db import UnitOfWork

COMMUNITY = "community:"


def _at(model: type[Span], as_of: datetime | None) -> ColumnElement[bool]:
    """The interval of ``model`` that holds just before ``as_of`` (or now)."""
    if as_of is None:
        return model.valid_to.is_(None)
    return and_(model.valid_from < as_of, or_(model.valid_to.is_(None), model.valid_to >= as_of))


def _flag(condition: ColumnElement[bool]) -> Any:
    return func.max(case((condition, 1), else_=0))


def _total(condition: Any) -> Any:
    return func.sum(case((condition, 1), else_=0))


def members_at(scopes: list[str], as_of: datetime | None) -> Subquery:
    """(scope, member_id, is_leader_cadre, reported_in) of the members counting in
    ``scopes`` — reported in at that scope (at a community: confirmed there)."""
    return (
        select(
            MemberScope.scope,
            MemberScope.member_id,
            MemberScope.is_leader_cadre,
            MemberScope.reported_in,
        )
        .where(MemberScope.scope.in_(scopes), _at(MemberScope, as_of))
        .subquery("ms")
    )


def verified_before(as_of: datetime | None) -> ColumnElement[bool]:
    verified = RecordFact.state == "verified"
    return verified if as_of is None else and_(verified, RecordFact.verified_at < as_of)


@dataclass(frozen=True)
class _Standing:
    """Per member (joined to ``ms``): what they have done, anywhere, at the instant."""

    joined: FromClause
    dual_registered: Any
    dual_paired: Any
    complete: Any
    kinds: dict[str, Any]
    hours: Any
    active: Any  # ≥1 verified record


def _standing_now(ms: Subquery) -> _Standing:
    """The current standing, as the projections keep it (one row per member)."""
    st = MemberStatus
    return _Standing(
        joined=ms.outerjoin(st, st.member_id == ms.c.member_id),
        dual_registered=st.dual_registered,
        dual_paired=st.dual_paired,
        complete=st.complete,
        kinds={k: getattr(st, k) for k in KINDS},
        hours=st.hours,
        active=st.verified_records > 0,
    )


def _standing_at(ms: Subquery, as_of: datetime, narrow: bool) -> _Standing:
    """The standing as of an instant, from the histories (each read from a covering index,
    :mod:`~services.reporting.models`). ``narrow``: only the members of ``ms`` are looked
    up; otherwise each history is scanned whole, in member order — cheaper when ``ms``
    holds (nearly) everyone, as the city's or a district's members do."""

    def among(column: Any) -> list[ColumnElement[bool]]:
        return [column.in_(select(ms.c.member_id))] if narrow else []

    confirmed = RegistrationState.state == "confirmed"
    reg = (
        select(
            RegistrationState.member_id,
            _flag(and_(confirmed, RegistrationState.role == "unit")).label("unit_ok"),
            _flag(and_(confirmed, RegistrationState.role == "residence")).label("home_ok"),
        )
        .where(_at(RegistrationState, as_of), *among(RegistrationState.member_id))
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
            *among(PairingState.member_id),
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
        .where(verified_before(as_of), *among(RecordFact.member_id))
        .group_by(RecordFact.member_id)
        .subquery("rec")
    )
    return _Standing(
        joined=ms.outerjoin(reg, reg.c.member_id == ms.c.member_id)
        .outerjoin(pair, pair.c.member_id == ms.c.member_id)
        .outerjoin(rec, rec.c.member_id == ms.c.member_id),
        dual_registered=and_(reg.c.unit_ok == 1, reg.c.home_ok == 1),
        dual_paired=and_(pair.c.need == 1, pair.c.project == 1),
        complete=and_(*[rec.c[k] == 1 for k in KINDS]),
        kinds={k: rec.c[k] == 1 for k in KINDS},
        hours=rec.c.hours,
        active=rec.c.member_id.is_not(None),
    )


def member_rows(uow: UnitOfWork, scopes: list[str], as_of: datetime | None) -> list[Any]:
    """One row of member counts per scope that has members (see ``values`` for the rules:
    what "reported in" means per scope is kept with each member's scope)."""
    ms = members_at(scopes, as_of)
    # the city or a district counts (nearly) every member: scan the histories whole
    narrow = not any(s == "city" or s.startswith("district:") for s in scopes)
    st = _standing_now(ms) if as_of is None else _standing_at(ms, as_of, narrow)
    reported = ms.c.reported_in
    query = (
        select(
            ms.c.scope,
            func.count().label("members"),
            _total(reported).label("reported_in"),
            _total(and_(reported, st.dual_registered)).label("dual_registered"),
            _total(and_(reported, st.dual_paired)).label("dual_paired"),
            _total(and_(reported, st.complete)).label("five_ones_complete"),
            *[_total(and_(reported, st.kinds[k])).label(k) for k in KINDS],
            func.coalesce(func.sum(st.hours), 0).label("hours"),
            _total(ms.c.is_leader_cadre).label("leading_cadres"),
            _total(and_(ms.c.is_leader_cadre, st.active)).label("cadres_active"),
        )
        .select_from(st.joined)
        .group_by(ms.c.scope)
    )
    return list(uow.session.execute(query))


def wish_counts(
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
            for scope in ("city", f"district:{community[:6]}", f"{COMMUNITY}{community}"):
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
    """Display names of ``scopes`` (the directory's, a district's from values.py, else the code)."""
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
    wishes = wish_counts(uow, scopes, as_of)
    rows = {row.scope: row for row in member_rows(uow, scopes, as_of)}
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
