"""Benchmark: a city's figures and rankings from reporting's read model vs from raw tables.

A synthetic district-scale campaign (≈ 20,000 members over ≈ 100 communities and 60 units,
a tenth of them city-level; their registrations, pairings, ≈ 5,000 wishes and ≈ 100,000
service records) is written twice, with the same facts: into registration's and pairing's
own tables, and into reporting's projections. Then the figures a report needs — the city,
every district and city-level unit ranked, the district's units and communities ranked —
are computed from each, timed, and checked equal.

The baseline is what a report without a read model does: read the members from
registration's database, their pairings, records and wishes from pairing's (two databases,
no join between them) and count in Python.

    .venv/bin/python bench/reporting.py [--members 20000] [--communities 100] [--seed 2016]
        [--records 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select

from services import registry
from services.pairing import models as pm
from services.registration import models as rm
from services.reporting import figures as fig
from services.reporting import models as xm
from shared.config import CITY, load
from shared.migrations import upgrade
from shared.runtime import Runtime, build

KINDS = fig.KINDS
T0 = datetime(2016, 6, 26, 1, 0, tzinfo=UTC)
DISTRICT = "410303"


def runtimes(home: Path) -> dict[str, Runtime]:
    config = load({"SERVICEMONTH_HOME": str(home), "SERVICEMONTH_PII_KEY": "11" * 32})
    found = {}
    for service in ("registration", "pairing", "reporting"):
        rt = build(service, registry.metadata(service), config)
        upgrade(service, rt.db)
        found[service] = rt
    return found


def generate(args: argparse.Namespace) -> dict[str, list[dict[str, Any]]]:
    """The facts, as rows of the source services' tables."""
    rng = random.Random(args.seed)
    codes = [f"{DISTRICT}{1 + c // 10:03d}{1 + c % 10:03d}" for c in range(args.communities)]
    units = []
    for u in range(60):
        city = u % 10 == 0
        units.append(
            {
                "code": f"U{u:04d}",
                "name": f"单位{u}",
                "level": "city" if city else "county",
                "district_code": CITY if city else DISTRICT,
                "community_code": rng.choice(codes),
            }
        )
    members, regs = [], []
    for _ in range(args.members):
        unit = rng.choice(units)
        mid = uuid.uuid4()
        members.append(
            {
                "id": mid,
                "state": "active",
                "unit_code": unit["code"],
                "residence_community_code": rng.choice(codes),
                "is_leader_cadre": rng.random() < 0.05,
                "created_at": T0,
            }
        )
        chosen = [
            ("unit", unit["community_code"]),
            ("residence", members[-1]["residence_community_code"]),
        ]
        for role, code in chosen:
            roll = rng.random()
            state = "confirmed" if roll < 0.8 else "submitted" if roll < 0.95 else "rejected"
            regs.append(
                {
                    "id": uuid.uuid4(),
                    "member_id": mid,
                    "community_code": code,
                    "district_code": DISTRICT,
                    "role": role,
                    "state": state,
                    "created_at": T0,
                }
            )
    pairings = []
    for m in members:
        for kind in ("need", "project"):
            if rng.random() < 0.7:
                pairings.append(
                    {
                        "id": uuid.uuid4(),
                        "member_id": m["id"],
                        "kind": kind,
                        "community_code": rng.choice(codes),
                        "state": "active" if rng.random() < 0.9 else "declined",
                        "created_at": T0,
                    }
                )
    records = []
    for _ in range(args.records):
        m = rng.choice(members)
        records.append(
            {
                "id": uuid.uuid4(),
                "member_id": m["id"],
                "kind": rng.choice(KINDS),
                "community_code": m["residence_community_code"],
                "day": date(2016, 7, 1),
                "hours": rng.choice((1.0, 2.0, 2.5)),
                "state": "verified" if rng.random() < 0.8 else "submitted",
                "created_at": T0,
            }
        )
    wishes, claims = [], []
    states = ("published", "claimed", "fulfilled", "confirmed", "expired", "pending_review")
    for _ in range(args.members // 4):
        state = rng.choice(states)
        wish = {"id": uuid.uuid4(), "community_code": rng.choice(codes), "title": "心愿"}
        wishes.append({**wish, "state": state, "created_at": T0})
        if state in ("claimed", "fulfilled", "confirmed"):
            claims.append(
                {
                    "id": uuid.uuid4(),
                    "wish_id": wish["id"],
                    "member_id": rng.choice(members)["id"],
                    "state": "realized" if state == "confirmed" else "active",
                    "claimed_at": T0,
                    "expires_at": T0 + timedelta(days=7),
                }
            )
    communities = [{"code": c, "name": f"社区{c[-4:]}", "district_code": DISTRICT} for c in codes]
    return {
        "communities": communities,
        "units": units,
        "members": members,
        "registrations": regs,
        "pairings": pairings,
        "records": records,
        "wishes": wishes,
        "claims": claims,
    }


def write_sources(rts: dict[str, Runtime], data: dict[str, list[dict[str, Any]]]) -> None:
    with rts["registration"].db.session() as s:
        s.execute(insert(rm.Community), data["communities"])
        s.execute(insert(rm.Unit), data["units"])
        s.execute(insert(rm.Member), data["members"])
        s.execute(insert(rm.CommunityRegistration), data["registrations"])
        s.commit()
    with rts["pairing"].db.session() as s:
        s.execute(insert(pm.Pairing), data["pairings"])
        s.execute(insert(pm.ServiceRecord), data["records"])
        s.execute(insert(pm.Wish), data["wishes"])
        s.execute(insert(pm.WishClaim), data["claims"])
        s.commit()


def write_projections(rt: Runtime, data: dict[str, list[dict[str, Any]]]) -> None:
    """The same facts as reporting's projections hold them after the events."""
    units = {u["code"]: u for u in data["units"]}
    places = [
        {
            "scope": f"community:{c['code']}",
            "kind": "community",
            "code": c["code"],
            "name": c["name"],
            "district": DISTRICT,
            "level": None,
        }
        for c in data["communities"]
    ] + [
        {
            "scope": f"unit:{u['code']}",
            "kind": "unit",
            "code": u["code"],
            "name": u["name"],
            "district": u["district_code"],
            "level": u["level"],
        }
        for u in data["units"]
    ]
    counting: dict[uuid.UUID, set[str]] = defaultdict(set)
    confirmed: dict[uuid.UUID, set[str]] = defaultdict(set)
    for r in data["registrations"]:
        if r["state"] in ("submitted", "confirmed"):
            counting[r["member_id"]].add(r["community_code"])
        if r["state"] == "confirmed":
            confirmed[r["member_id"]].add(f"community:{r['community_code']}")
    scopes, facts = [], []
    for m in data["members"]:
        unit = units[m["unit_code"]]
        mine = {"city", f"unit:{unit['code']}"} | {f"community:{c}" for c in counting[m["id"]]}
        if unit["district_code"] != CITY or counting[m["id"]]:
            mine.add(f"district:{DISTRICT}")
        scopes += [
            {
                "member_id": m["id"],
                "scope": s,
                "is_leader_cadre": m["is_leader_cadre"],
                # reported in there: at a community, confirmed there; elsewhere, anywhere
                "reported_in": (
                    s in confirmed[m["id"]]
                    if s.startswith("community:")
                    else bool(confirmed[m["id"]])
                ),
                "valid_from": T0,
            }
            for s in sorted(mine)
        ]
        facts.append(
            {
                "member_id": m["id"],
                "unit_code": unit["code"],
                "unit_district": unit["district_code"],
                "is_leader_cadre": m["is_leader_cadre"],
                "name_masked": "张*",
                "registered_at": T0,
            }
        )
    holder = {c["wish_id"]: c["member_id"] for c in data["claims"]}
    status = standing(data)
    with rt.db.session() as s:
        s.execute(insert(xm.MemberStatus), status)
        s.execute(insert(xm.Place), places)
        s.execute(insert(xm.MemberFact), facts)
        s.execute(insert(xm.MemberScope), scopes)
        s.execute(
            insert(xm.RegistrationState),
            [
                {
                    "registration_id": r["id"],
                    "member_id": r["member_id"],
                    "community_code": r["community_code"],
                    "role": r["role"],
                    "state": r["state"],
                    "valid_from": T0,
                }
                for r in data["registrations"]
            ],
        )
        s.execute(
            insert(xm.PairingState),
            [
                {
                    "pairing_id": p["id"],
                    "member_id": p["member_id"],
                    "kind": p["kind"],
                    "community_code": p["community_code"],
                    "state": p["state"],
                    "valid_from": T0,
                }
                for p in data["pairings"]
            ],
        )
        s.execute(
            insert(xm.RecordFact),
            [
                {
                    "record_id": r["id"],
                    "member_id": r["member_id"],
                    "kind": r["kind"],
                    "community_code": r["community_code"],
                    "day": r["day"],
                    "hours": r["hours"],
                    "state": r["state"],
                    "verified_at": T0 if r["state"] == "verified" else None,
                }
                for r in data["records"]
            ],
        )
        s.execute(
            insert(xm.WishState),
            [
                {
                    "wish_id": w["id"],
                    "community_code": w["community_code"],
                    "state": w["state"],
                    "member_id": holder.get(w["id"]),
                    "valid_from": T0,
                }
                for w in data["wishes"]
            ],
        )
        s.commit()


def standing(data: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Each member's current standing, as the projections keep it (MemberStatus)."""
    roles: dict[uuid.UUID, set[str]] = defaultdict(set)
    for r in data["registrations"]:
        if r["state"] == "confirmed":
            roles[r["member_id"]].add(r["role"])
    paired: dict[uuid.UUID, set[str]] = defaultdict(set)
    for p in data["pairings"]:
        if p["state"] == "active":
            paired[p["member_id"]].add(p["kind"])
    kinds: dict[uuid.UUID, set[str]] = defaultdict(set)
    hours: Counter[uuid.UUID] = Counter()
    count: Counter[uuid.UUID] = Counter()
    for r in data["records"]:
        if r["state"] == "verified":
            kinds[r["member_id"]].add(r["kind"])
            hours[r["member_id"]] += r["hours"]
            count[r["member_id"]] += 1
    return [
        {
            "member_id": m["id"],
            "reported_in": bool(roles[m["id"]]),
            "dual_registered": {"unit", "residence"} <= roles[m["id"]],
            "dual_paired": {"need", "project"} <= paired[m["id"]],
            **{k: k in kinds[m["id"]] for k in KINDS},
            "complete": set(KINDS) <= kinds[m["id"]],
            "verified_records": count[m["id"]],
            "hours": round(hours[m["id"]], 2),
        }
        for m in data["members"]
    ]


# --- the two ways to compute a city report's figures ---------------------------------------


def from_read_model(rt: Runtime, as_of: datetime | None = None) -> dict[str, Any]:
    """Live (``as_of`` None: each member's kept standing) or as of an instant (histories)."""
    with rt.uow() as uow:
        top = fig.children(uow, "city")
        units = fig.children(uow, f"district:{DISTRICT}")
        communities = fig.children(uow, f"district:{DISTRICT}", "community")
        return {
            "city": fig.figures(uow, "city", as_of),
            "levels": fig.ranking(uow, top, as_of),
            "units": fig.ranking(uow, units, as_of),
            "communities": fig.ranking(uow, communities, as_of),
        }


def from_raw_tables(rts: dict[str, Runtime]) -> dict[str, Any]:
    """The baseline: read both services' tables and count in Python."""
    with rts["registration"].db.session() as s:
        units = {
            u.code: u for u in s.execute(select(rm.Unit.code, rm.Unit.level, rm.Unit.district_code))
        }
        members = s.execute(
            select(rm.Member.id, rm.Member.unit_code, rm.Member.is_leader_cadre).where(
                rm.Member.state == "active"
            )
        ).all()
        regs = s.execute(
            select(
                rm.CommunityRegistration.member_id,
                rm.CommunityRegistration.community_code,
                rm.CommunityRegistration.role,
                rm.CommunityRegistration.state,
            )
        ).all()
    with rts["pairing"].db.session() as s:
        pairs = s.execute(
            select(pm.Pairing.member_id, pm.Pairing.kind)
            .where(pm.Pairing.state == "active")
            .distinct()
        ).all()
        done = s.execute(
            select(
                pm.ServiceRecord.member_id, pm.ServiceRecord.kind, func.sum(pm.ServiceRecord.hours)
            )
            .where(pm.ServiceRecord.state == "verified")
            .group_by(pm.ServiceRecord.member_id, pm.ServiceRecord.kind)
        ).all()
        wishes = s.execute(select(pm.Wish.id, pm.Wish.community_code, pm.Wish.state)).all()
        held = select(pm.WishClaim.wish_id, pm.WishClaim.member_id).where(
            pm.WishClaim.state.in_(("active", "realized"))
        )
        claims = {wish_id: member_id for wish_id, member_id in s.execute(held)}
    scopes: dict[uuid.UUID, set[str]] = defaultdict(set)
    confirmed: dict[uuid.UUID, set[str]] = defaultdict(set)
    confirmed_in: dict[uuid.UUID, set[str]] = defaultdict(set)  # 报到 at these communities
    for member_id, code, role, state in regs:
        if state in ("submitted", "confirmed"):
            scopes[member_id] |= {f"community:{code}", f"district:{code[:6]}"}
        if state == "confirmed":
            confirmed[member_id].add(role)
            confirmed_in[member_id].add(f"community:{code}")
    paired: dict[uuid.UUID, set[str]] = defaultdict(set)
    for member_id, kind in pairs:
        paired[member_id].add(kind)
    kinds: dict[uuid.UUID, set[str]] = defaultdict(set)
    hours: dict[uuid.UUID, float] = defaultdict(float)
    for member_id, kind, h in done:
        kinds[member_id].add(kind)
        hours[member_id] += float(h)
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for m in members:
        unit = units[m.unit_code]
        mine = scopes[m.id] | {"city", f"unit:{m.unit_code}"}
        if unit.district_code != CITY:
            mine.add(f"district:{unit.district_code}")
        everywhere = {
            "members": True,
            "leading_cadres": m.is_leader_cadre,
            "leading_cadres_active": m.is_leader_cadre and bool(kinds[m.id]),
        }
        achieved = {
            "dual_registered": {"unit", "residence"} <= confirmed[m.id],
            "dual_paired": {"need", "project"} <= paired[m.id],
            "five_ones_complete": set(KINDS) <= kinds[m.id],
            **{k: k in kinds[m.id] for k in KINDS},
        }
        for scope in mine:
            # reported in at a community: confirmed there; elsewhere: confirmed anywhere
            here = scope in confirmed_in[m.id] if scope.startswith("community:") else None
            reported = bool(confirmed[m.id]) if here is None else here
            flags = everywhere | ({"reported_in": True, **achieved} if reported else {})
            counts[scope].update(k for k, v in flags.items() if v)
            counts[scope]["hours_x100"] += round(hours[m.id] * 100)
    wish_counts: dict[str, Counter[str]] = defaultdict(Counter)
    unit_of = {m.id: m.unit_code for m in members}
    for wish_id, code, state in wishes:
        for scope in ("city", f"district:{code[:6]}", f"community:{code}"):
            wish_counts[scope][state] += 1
        if wish_id in claims and claims[wish_id] in unit_of:
            wish_counts[f"unit:{unit_of[claims[wish_id]]}"][state] += 1

    def figures(scope: str) -> fig.Figures:
        c = counts[scope]
        return fig.Figures(
            scope=scope,
            name=scope,
            members=c["members"],
            reported_in=c["reported_in"],
            dual_registered=c["dual_registered"],
            dual_paired=c["dual_paired"],
            five_ones_complete=c["five_ones_complete"],
            five_ones={k: c[k] for k in KINDS},
            wishes=dict(wish_counts[scope]),
            verified_hours=c["hours_x100"] / 100,
            leading_cadres=c["leading_cadres"],
            leading_cadres_active=c["leading_cadres_active"],
        )

    def ranking(chosen: list[str]) -> list[tuple[int, fig.Figures]]:
        found = sorted((figures(s) for s in chosen), key=lambda f: (-f.dual_pairing_rate, f.code))
        return list(enumerate(found, start=1))

    city_units = sorted(f"unit:{u}" for u, x in units.items() if x.level == "city")
    top = [f"district:{DISTRICT}", *city_units]
    county = sorted(f"unit:{u}" for u, x in units.items() if x.level != "city")
    communities = sorted(s for s in counts if s.startswith("community:"))
    return {
        "city": figures("city"),
        "levels": ranking(top),
        "units": ranking(county),
        "communities": ranking(communities),
    }


def same(a: fig.Figures, b: fig.Figures) -> bool:
    keys = (
        "members",
        "reported_in",
        "dual_registered",
        "dual_paired",
        "five_ones_complete",
        "five_ones",
        "leading_cadres",
        "leading_cadres_active",
    )
    wishes = {k: v for k, v in a.wishes.items() if v} == {k: v for k, v in b.wishes.items() if v}
    hours = abs(a.verified_hours - b.verified_hours) < 0.01
    return wishes and hours and all(getattr(a, k) == getattr(b, k) for k in keys)


def best(fn: Any, repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return min(times), result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--communities", type=int, default=100)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=2016)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as home:
        rts = runtimes(Path(home))
        data = generate(args)
        started = time.perf_counter()
        write_sources(rts, data)
        write_projections(rts["reporting"], data)
        print(
            f"dataset: {len(data['members'])} members, {len(data['registrations'])} registrations, "
            f"{len(data['pairings'])} pairings, {len(data['records'])} records, "
            f"{len(data['wishes'])} wishes (written in {time.perf_counter() - started:.1f} s)"
        )
        model_s, model = best(lambda: from_read_model(rts["reporting"]), args.repeat)
        later = T0 + timedelta(days=40)
        asof_s, asof = best(lambda: from_read_model(rts["reporting"], later), args.repeat)
        raw_s, raw = best(lambda: from_raw_tables(rts), args.repeat)
        assert asof == model, "as of a later instant equals the live figures"
        assert same(model["city"], raw["city"]), (model["city"], raw["city"])
        for level in ("levels", "units", "communities"):
            assert [f.scope for _, f in model[level]] == [f.scope for _, f in raw[level]], level
            assert all(same(a, b) for (_, a), (_, b) in zip(model[level], raw[level], strict=True))
        print(f"read model : {model_s * 1000:8.1f} ms  (city + 3 rankings, best of {args.repeat})")
        print(f"as of (t)  : {asof_s * 1000:8.1f} ms  (the same, as of an instant: the histories)")
        print(
            f"raw tables : {raw_s * 1000:8.1f} ms  (registration + pairing tables, Python counts)"
        )
        print(f"ratio      : {raw_s / model_s:8.2f}x  (raw / read model); both agree")
        for rt in rts.values():
            rt.db.dispose()


if __name__ == "__main__":
    main()
