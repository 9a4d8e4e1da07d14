"""Done-when 1 on both backends: for a generated month, every figure of the summary and of
the report equals what this test computes independently from registration's and pairing's
own tables — live, and as of an instant in the middle of the month (the path every report
takes), ranks included.

The oracle uses no reporting code. Its rules (docs/domain.md, "Report figures", scoped):
a member counts in a scope while on its roster (a submitted or confirmed registration in a
community; the unit; the districts of both); reported in at a *community* means the
member's registration in that community is confirmed, elsewhere ≥1 confirmed registration
anywhere; dual registration, dual pairing and the five ones count members reported in.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from services.pairing.models import Pairing, ServiceRecord, Wish, WishClaim
from services.registration.models import Community, CommunityRegistration, Member, Unit
from services.reporting import figures as fig
from services.reporting.contents import gather
from shared.clock import SimulatedClock
from tests.integration.reporting_support import (  # noqa: F401 (admin, clock: fixtures)
    KINDS,
    SCOPES,
    START,
    admin,
    clock,
    confirm,
    deliver_to_pairing,
    deliver_to_reporting,
    drive_month,
    first_half,
    release,
    serve,
)

COUNTED = (
    "members",
    "reported_in",
    "dual_registered",
    "dual_paired",
    "five_ones",
    "five_ones_complete",
    "verified_hours",
    "leading_cadres",
    "leading_cadres_active",
)


@dataclass(frozen=True)
class Sources:
    """The source services' tables as they are at one instant."""

    members: dict[uuid.UUID, Member]
    units: dict[str, Unit]
    communities: list[str]
    regs: list[CommunityRegistration]
    pairs: set[tuple[uuid.UUID, str]]
    records: list[ServiceRecord]
    wishes: list[Wish]
    claims: list[WishClaim]


def read_sources(backend: Any) -> Sources:
    with backend.rt("registration").db.session() as s:
        members = {m.id: m for m in s.scalars(select(Member).where(Member.state == "active"))}
        units = {u.code: u for u in s.scalars(select(Unit))}
        communities = list(s.scalars(select(Community.code)))
        regs = list(s.scalars(select(CommunityRegistration)))
        s.expunge_all()
    with backend.rt("pairing").db.session() as s:
        pairs = set(
            s.execute(select(Pairing.member_id, Pairing.kind).where(Pairing.state == "active"))
            .tuples()
            .all()
        )
        records = list(s.scalars(select(ServiceRecord).where(ServiceRecord.state == "verified")))
        wishes = list(s.scalars(select(Wish)))
        claims = list(
            s.scalars(select(WishClaim).where(WishClaim.state.in_(("active", "realized"))))
        )
        s.expunge_all()
    return Sources(members, units, communities, regs, pairs, records, wishes, claims)


def all_scopes(src: Sources) -> list[str]:
    districts = {c[:6] for c in src.communities} | {
        u.district_code for u in src.units.values() if u.level != "city"
    }
    return [
        "city",
        *(f"district:{d}" for d in sorted(districts)),
        *(f"unit:{u}" for u in sorted(src.units)),
        *(f"community:{c}" for c in sorted(src.communities)),
    ]


def expected(src: Sources, scope: str) -> dict[str, Any]:
    """A scope's figures from registration's and pairing's tables (no reporting code)."""
    kind, _, code = scope.partition(":")
    counting = [r for r in src.regs if r.state in ("submitted", "confirmed")]
    confirmed = [r for r in src.regs if r.state == "confirmed"]

    def inside(m: Member) -> bool:
        if kind == "city":
            return True
        if kind == "unit":
            return m.unit_code == code
        mine = [r for r in counting if r.member_id == m.id]
        if kind == "community":
            return any(r.community_code == code for r in mine)
        return src.units[m.unit_code].district_code == code or any(
            r.district_code == code for r in mine
        )

    def reported_in(i: uuid.UUID) -> bool:
        here = [r for r in confirmed if r.member_id == i]
        if kind == "community":  # 报到 at this community: its registration is confirmed
            return any(r.community_code == code for r in here)
        return bool(here)

    chosen = {i for i, m in src.members.items() if inside(m)}
    reported = {i for i in chosen if reported_in(i)}
    roles = {(r.member_id, r.role) for r in confirmed}
    dual = {i for i in reported if {(i, "unit"), (i, "residence")} <= roles}
    paired = {i for i in reported if {(i, "need"), (i, "project")} <= src.pairs}
    kinds: dict[uuid.UUID, set[str]] = {}
    hours = 0.0
    for r in src.records:
        if r.member_id in chosen:
            kinds.setdefault(r.member_id, set()).add(r.kind)
            hours += r.hours
    done = {i: v for i, v in kinds.items() if i in reported}
    if kind == "unit":
        holder = {c.wish_id: c.member_id for c in src.claims}
        by_state = Counter(w.state for w in src.wishes if holder.get(w.id) in chosen)
    else:
        prefix = "" if kind == "city" else code
        by_state = Counter(w.state for w in src.wishes if w.community_code.startswith(prefix))
    cadres = {i for i in chosen if src.members[i].is_leader_cadre}
    return {
        "members": len(chosen),
        "reported_in": len(reported),
        "dual_registered": len(dual),
        "dual_paired": len(paired),
        "five_ones": {k: sum(k in v for v in done.values()) for k in KINDS},
        "five_ones_complete": sum(v >= set(KINDS) for v in done.values()),
        "verified_hours": round(hours, 2),
        "wishes": {s: n for s, n in by_state.items() if n},
        "leading_cadres": len(cadres),
        "leading_cadres_active": len(cadres & set(kinds)),
    }


def observed(summary: dict[str, Any]) -> dict[str, Any]:
    got = {k: summary[k] for k in COUNTED}
    got["wishes"] = {s: n for s, n in summary["wishes"].items() if n}
    return got


def oracle_ranks(oracle: dict[str, dict[str, Any]], scopes: list[str]) -> list[tuple[int, str]]:
    """The report's ranking: by 对接率 (dual-paired ÷ reported in), best first, ties by code."""

    def rate(scope: str) -> float:
        f = oracle[scope]
        return f["dual_paired"] / f["reported_in"] if f["reported_in"] else 0.0

    ordered = sorted(scopes, key=lambda s: (-rate(s), s.partition(":")[2]))
    return list(enumerate(ordered, start=1))


def split_members(src: Sources) -> dict[uuid.UUID, str]:
    """Members confirmed in one community and still submitted in another: → the latter."""
    found = {}
    for r in src.regs:
        if r.state == "submitted" and any(
            o.member_id == r.member_id
            and o.state == "confirmed"
            and o.community_code != r.community_code
            for o in src.regs
        ):
            found[r.member_id] = r.community_code
    return found


def test_every_figure_of_the_summary_equals_the_source_tables(
    backend: Any, admin: Any, clock: SimulatedClock
) -> None:
    drive_month(backend, admin, clock)
    deliver_to_reporting(backend)
    src = read_sources(backend)
    split = split_members(src)
    assert "410305001001" in split.values(), "a member is confirmed elsewhere, submitted here"
    scopes = [*SCOPES, "unit:U410303001", "community:410305001001"]
    for scope in scopes:
        summary = admin.get("/api/v1/summary", params={"scope": scope})
        assert summary.status_code == 200, summary.text
        assert observed(summary.json()) == expected(src, scope), scope
    city = admin.get("/api/v1/summary", params={"scope": "city"}).json()
    assert city["members"] == 18 and city["wishes"]["confirmed"] > 0
    assert city["five_ones"]["wish"] > 0 and city["dual_paired"] > 0
    rates = city["rates"]
    assert rates["reported_in_rate"] == round(city["reported_in"] / city["members"], 4)
    assert rates["dual_pairing_rate"] == round(city["dual_paired"] / city["reported_in"], 4)
    home = admin.get("/api/v1/summary", params={"scope": "community:410305001001"}).json()
    assert home["reported_in"] < home["members"]  # the split member is on the roster only
    unit = admin.get("/api/v1/summary", params={"scope": "unit:U410300001"}).json()
    assert unit["rates"]["wish_claim_rate"] is None


def test_figures_and_ranks_as_of_mid_month_equal_the_source_tables_at_that_instant(
    backend: Any, admin: Any, clock: SimulatedClock
) -> None:
    month = first_half(backend, admin, clock)
    clock.advance(timedelta(hours=1))
    middle = clock.now()  # every change so far occurred before it
    src = read_sources(backend)
    assert split_members(src), "a member is confirmed in one community, submitted in another"
    scopes = all_scopes(src)
    oracle = {scope: expected(src, scope) for scope in scopes}
    clock.advance(timedelta(hours=1))
    # the month goes on: the rest report in, the split member too, more service
    confirm(month, 1.0)
    release(month)
    deliver_to_pairing(month)
    serve(month, 1)
    serve(month, 1)
    deliver_to_reporting(backend)
    assert not split_members(read_sources(backend)), "the later events changed the sources"

    rt = backend.rt("reporting")
    with rt.uow() as uow:
        then = fig.figures_many(uow, scopes, middle)
        now = fig.figures_many(uow, scopes)
        levels = {
            "top": fig.children(uow, "city"),
            "units": fig.children(uow, "district:410303"),
            "communities": fig.children(uow, "district:410303", "community"),
        }
        ranks = {name: fig.ranking(uow, chosen, middle) for name, chosen in levels.items()}
        data = gather(
            uow,
            "city",
            START,
            middle,
            threshold=0.6,
            campaign_start=rt.settings.campaign_start,
        )
    for scope in scopes:
        assert observed(then[scope].as_dict()) == oracle[scope], scope
    assert any(observed(now[s].as_dict()) != oracle[s] for s in scopes), "nothing moved after"
    assert levels["top"][:3] == ["district:410303", "district:410305", "district:410311"]
    for name, chosen in levels.items():
        assert [(n, f.scope) for n, f in ranks[name]] == oracle_ranks(oracle, chosen), name
    # the report over [start, middle) says the same: its headline figures and its rankings
    assert observed(data.after.as_dict()) == oracle["city"]
    districts = [s for s in levels["top"] if s.startswith("district:")]
    assert [(n, f.scope) for n, f in data.ranked] == oracle_ranks(oracle, districts)
    for level, rows in data.levels.items():
        chosen = [f.scope for _, f in rows]
        assert [(n, f.scope) for n, f in rows] == oracle_ranks(oracle, chosen), level
        for _, f in rows:
            assert observed(f.as_dict()) == oracle[f.scope], f.scope
