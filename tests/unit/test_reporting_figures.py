"""Reporting's projections and figures, fed events directly: members counted once per scope,
figures as of an instant, late and repeated states, ranks with ties by code, snapshots."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.reporting import figures as fig
from services.reporting import snapshots
from services.reporting.consumers import handlers_for
from services.reporting.models import Base
from shared import events as ev
from shared.clock import SimulatedClock
from shared.config import CAMPAIGN_TZ, load
from shared.migrations import upgrade
from shared.runtime import Runtime, build

T0 = datetime(2016, 6, 27, 9, 0, tzinfo=CAMPAIGN_TZ)
HOME_X = "410305001001"  # the member lives in district 410305
UNIT_COMMUNITY = "410303001001"  # the city-level unit's community lies in 410303


@pytest.fixture
def rt(tmp_path: Path) -> Runtime:
    config = load({"SERVICEMONTH_HOME": str(tmp_path), "SERVICEMONTH_PII_KEY": "11" * 32})
    runtime = build("reporting", Base.metadata, config)
    upgrade("reporting", runtime.db)
    return Runtime(runtime.service, config, runtime.db, SimulatedClock(T0))


def apply(rt: Runtime, event: ev.Event, at: datetime, district: str = "410303") -> None:
    envelope = ev.envelope_for(
        event, district=district, campaign="t", producer="test", occurred_at=at
    )
    table = handlers_for(rt)
    with rt.uow() as uow:
        assert uow.first_time(envelope)
        for handler in table[type(event)]:
            handler(event, envelope, uow)
        uow.commit()


def member(
    unit: str = "U410300001", unit_district: str = "410300", cadre: bool = False
) -> tuple[ev.MemberRegistered, list[ev.CommunityRef]]:
    refs = [
        ev.CommunityRef(
            registration_id=uuid.uuid4(), community_code=code, role=role, district=code[:6]
        )
        for role, code in (("unit", UNIT_COMMUNITY), ("residence", HOME_X))
    ]
    event = ev.MemberRegistered(
        member_id=uuid.uuid4(),
        unit_code=unit,
        unit_district=unit_district,
        communities=refs,
        is_leader_cadre=cadre,
        name_masked="张*",
    )
    return event, refs


def confirm(rt: Runtime, event: ev.MemberRegistered, ref: ev.CommunityRef, at: datetime) -> None:
    apply(
        rt,
        ev.RegistrationConfirmed(
            registration_id=ref.registration_id,
            member_id=event.member_id,
            community_code=ref.community_code,
            role=ref.role,
            state="confirmed",
        ),
        at,
    )


def pair_with_need_and_project(
    rt: Runtime, member_id: uuid.UUID, community: str, at: datetime
) -> None:
    """The member is paired with a need and a project of ``community`` (双对接) at ``at``."""
    for kind in ("need", "project"):
        pairing = ev.PairingMade(
            pairing_id=uuid.uuid4(),
            member_id=member_id,
            kind=kind,
            community_code=community,
            subject_id=uuid.uuid4(),
            title="巡逻",
            state="active",
        )
        apply(rt, pairing, at)


def verified_visit(
    rt: Runtime, member_id: uuid.UUID, community: str, day: date, hours: float, at: datetime
) -> None:
    """A home visit in ``community`` on ``day``, verified at ``at``."""
    record = ev.ActivityVerified(
        record_id=uuid.uuid4(),
        member_id=member_id,
        kind="home_visit",
        community_code=community,
        day=day,
        hours=hours,
        state="verified",
    )
    apply(rt, record, at)


def read(rt: Runtime, scope: str, as_of: datetime | None = None) -> fig.Figures:
    with rt.uow() as uow:
        return fig.figures(uow, scope, as_of)


def test_a_city_unit_member_living_in_a_district_counts_once_everywhere(rt: Runtime) -> None:
    event, _refs = member()
    for district in ("410303", "410305"):  # registration sends it once per district
        apply(rt, event, T0, district)
    for scope in ("city", "unit:U410300001", "district:410303", "district:410305"):
        assert read(rt, scope).members == 1, scope
    assert read(rt, f"community:{HOME_X}").members == 1
    assert read(rt, "district:410300").members == 0  # the city level is no district
    with rt.uow() as uow:
        many = fig.figures_many(uow, ["city", "district:410303", "district:410305"])
    assert sum(f.members for f in many.values()) == 3  # one per scope, not one per row


def test_figures_as_of_an_instant_see_only_what_happened_before_it(rt: Runtime) -> None:
    event, (unit_ref, home_ref) = member(cadre=True)
    apply(rt, event, T0)
    confirm(rt, event, unit_ref, T0 + timedelta(days=1))
    confirm(rt, event, home_ref, T0 + timedelta(days=2))
    pair_with_need_and_project(rt, event.member_id, HOME_X, T0 + timedelta(days=3))
    verified_visit(rt, event.member_id, HOME_X, date(2016, 7, 1), 2.5, T0 + timedelta(days=4))
    day = timedelta(days=1)
    at = [read(rt, "city", T0 + n * day) for n in range(6)]
    assert [f.members for f in at] == [0, 1, 1, 1, 1, 1]  # as_of is exclusive
    assert [f.reported_in for f in at] == [0, 0, 1, 1, 1, 1]
    assert [f.dual_registered for f in at] == [0, 0, 0, 1, 1, 1]
    assert [f.dual_paired for f in at] == [0, 0, 0, 0, 1, 1]
    assert [f.leading_cadres_active for f in at] == [0, 0, 0, 0, 0, 1]
    assert at[5].verified_hours == 2.5 and at[5].five_ones["home_visit"] == 1
    assert at[5] == read(rt, "city")
    assert (at[5].cadre_rate, at[5].dual_pairing_rate, at[5].five_ones_rate) == (1.0, 1.0, 0.0)
    with rt.uow() as uow:
        assert fig.cadres_without_record(uow, "city", T0 + 4 * day) == [
            ("U410300001", "U410300001", "张*")
        ]
        assert fig.cadres_without_record(uow, "city") == []
        top = fig.highlights(uow, "city", T0, T0 + 5 * day)
    assert top["hours"] == [("张*", "U410300001", 2.5)] and top["wishes"] == []


def test_a_late_or_repeated_state_keeps_the_history_right(rt: Runtime) -> None:
    event, _ = member(unit="U410303001", unit_district="410303")
    apply(rt, event, T0)
    wish_id = uuid.uuid4()

    def wish(state: str, at: datetime, member_id: uuid.UUID | None = None) -> None:
        name = {"pending_review": "submitted"}.get(state, state)
        payload: dict[str, Any] = {"wish_id": wish_id, "community_code": HOME_X, "title": "买米"}
        apply(rt, ev.WISH_EVENTS[name](**payload, state=state, member_id=member_id), at)

    hour = timedelta(hours=1)
    wish("published", T0 + 2 * hour)
    wish("claimed", T0 + 3 * hour, event.member_id)
    wish("published", T0 + 2 * hour)  # the same state again changes nothing
    wish("collected", T0)  # late: slotted in before the later states
    wish("fulfilled", T0 + 4 * hour)  # names nobody: the holder stays
    states = [read(rt, "community:" + HOME_X, T0 + n * hour + hour / 2).wishes for n in range(5)]
    held = [max(s, key=lambda k: s[k]) for s in states]
    assert held == ["collected", "collected", "published", "claimed", "fulfilled"]
    assert read(rt, "unit:U410303001").wishes["fulfilled"] == 1
    assert read(rt, "district:410303").wishes["fulfilled"] == 0  # the wish lives in 410305


def test_ranks_are_best_first_with_ties_broken_by_code(rt: Runtime) -> None:
    for code, name in (("U3", "三"), ("U1", "一"), ("U2", "二")):
        unit = ev.UnitChanged(
            code=code, name=name, level="city", district="410300", community_code=UNIT_COMMUNITY
        )
        apply(rt, unit, T0)
    first, (unit_ref, _) = member(unit="U2")
    apply(rt, first, T0)
    confirm(rt, first, unit_ref, T0)
    with rt.uow() as uow:
        ranked = fig.ranking(uow, ["unit:U3", "unit:U1", "unit:U2"], None, "reported_in_rate")
        assert fig.children(uow, "city", "unit") == ["unit:U1", "unit:U2", "unit:U3"]
    assert [(n, f.scope, f.name) for n, f in ranked] == [
        (1, "unit:U2", "二"),
        (2, "unit:U1", "一"),
        (3, "unit:U3", "三"),
    ]


def test_daily_snapshots_are_taken_once_and_feed_the_series(rt: Runtime) -> None:
    event, (unit_ref, _) = member()
    apply(rt, event, T0)
    confirm(rt, event, unit_ref, T0 + timedelta(days=2))
    now = datetime(2016, 7, 1, 12, 0, tzinfo=CAMPAIGN_TZ)
    written = snapshots.sweep(rt, now)
    assert written > 0 and snapshots.sweep(rt, now) == 0
    with rt.uow() as uow:
        series = snapshots.daily_series(uow, "city", date(2016, 6, 26), date(2016, 7, 2))
    assert series[0][0] == date(2016, 6, 26)
    assert [f.reported_in for _, f in series] == [0, 0, 0, 1, 1, 1]
    assert [f.members for _, f in series] == [0, 1, 1, 1, 1, 1]


def test_figures_round_trip_and_rates_are_zero_without_a_denominator() -> None:
    empty = fig.Figures(scope="city", name="全市")
    assert all(getattr(empty, rate) == 0.0 for rate in fig.Figures.RATES)
    full = fig.Figures(scope="unit:U1", name="一", members=4, reported_in=2, dual_paired=1)
    assert fig.Figures.from_dict(full.as_dict()) == full
    assert full.as_dict()["rates"]["dual_pairing_rate"] == 0.5


def test_a_community_counts_a_member_reported_in_only_where_confirmed(rt: Runtime) -> None:
    """Confirmed at the unit's community, still submitted at home: reported in at the unit's
    community, the unit, both districts and the city — not at home, where the member is on
    the roster but neither reported in nor counted in the five ones or pairing there."""
    event, (unit_ref, _home_ref) = member(cadre=True)
    apply(rt, event, T0)
    confirm(rt, event, unit_ref, T0 + timedelta(hours=1))
    pair_with_need_and_project(rt, event.member_id, UNIT_COMMUNITY, T0 + timedelta(hours=2))
    verified_visit(
        rt, event.member_id, UNIT_COMMUNITY, date(2016, 6, 27), 2.0, T0 + timedelta(hours=3)
    )
    later = T0 + timedelta(hours=4)
    scopes = [
        "city",
        "unit:U410300001",
        "district:410303",
        "district:410305",
        f"community:{UNIT_COMMUNITY}",
        f"community:{HOME_X}",
    ]
    for as_of in (None, later):  # the live standing and the histories agree
        with rt.uow() as uow:
            found = fig.figures_many(uow, scopes, as_of)
        home = found[f"community:{HOME_X}"]
        assert (home.members, home.reported_in, home.dual_paired) == (1, 0, 0), as_of
        assert home.five_ones["home_visit"] == 0 and home.dual_pairing_rate == 0.0
        assert (home.verified_hours, home.leading_cadres_active) == (2.0, 1)
        for scope in scopes[:-1]:
            f = found[scope]
            assert (f.members, f.reported_in, f.dual_paired) == (1, 1, 1), (scope, as_of)
            assert f.five_ones["home_visit"] == 1 and f.dual_registered == 0, (scope, as_of)


def wish_figures(scope: str, **wishes: int) -> fig.Figures:
    return fig.Figures(scope=scope, name=scope, wishes=wishes)


def test_the_funnel_and_the_claim_rate_share_one_meaning_of_published() -> None:
    wishes = {"published": 2, "withdrawn": 1, "expired": 1, "claimed": 2, "confirmed": 2}
    city = wish_figures("city", **wishes)
    assert [(key, n) for key, _, n in city.funnel] == [
        ("published", 8),  # withdrawn and expired wishes were published
        ("claimed", 4),
        ("fulfilled", 2),
        ("confirmed", 2),
    ]
    assert city.wishes_published == 8 and city.wish_claim_rate == 0.5
    assert city.as_dict()["wish_funnel"]["published"] == 8
    unit = wish_figures("unit:U1", claimed=2, confirmed=1)
    assert unit.wish_claim_rate is None  # a unit's wishes are only its members' claims
    assert unit.funnel[0][2] is None and unit.funnel[1][2] == 3
    assert unit.as_dict()["rates"]["wish_claim_rate"] is None
    assert unit.wish_completion_rate == pytest.approx(1 / 3)


def test_reporting_handles_only_the_events_its_projections_read_and_revocations(
    rt: Runtime,
) -> None:
    from services.reporting.replay import FOLDS
    from shared.events import CATALOGUE, TokensRevoked

    table = handlers_for(rt)
    assert set(table) == set(FOLDS) | {TokensRevoked}
    ignored = {cls.TYPE for cls in CATALOGUE.values()} - {cls.TYPE for cls in table}
    assert {"notification.sent", "report.generated", "team.joined"} <= ignored
