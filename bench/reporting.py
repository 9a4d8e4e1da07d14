"""Benchmark: a city's figures and rankings from reporting's read model vs from raw tables.

A synthetic district-scale campaign (≈ 20,000 members over ≈ 100 communities and 60 units,
a tenth of them city-level; their registrations, pairings, ≈ 5,000 wishes and ≈ 100,000
service records) is written twice, with the same facts: into registration's and pairing's
own tables, and into reporting's projections. Then the figures a report needs — the city,
every district and city-level unit ranked, the district's units and communities ranked —
are computed from each, timed, and checked equal.

The baseline of ``measure(ctx)`` (issue 15: "the city summary from the read model — vs a
SQL GROUP BY over the raw tables") is one SQL statement grouping registration's and
pairing's raw tables: members, their community registrations, pairings, service records,
and the wishes. In production those live in two databases, where no join is possible; the
baseline puts copies of pairing's tables (same columns and read indexes, no foreign keys)
into registration's database so that the database can do the whole count. ``main``'s
older comparison reads both databases and counts in Python (that count also checks both).

The facts change over the month (registrations confirmed, pairings made and declined,
records verified, wishes claimed at spread-out instants), so the projections hold real
histories. The same figures *as of an instant* in the middle of the month — what a closed
period's report reads — are timed too, and checked against the same Python counts over the
facts as they stood then; as of an instant after every change they equal the live figures.

    .venv/bin/python bench/reporting.py [--members 20000] [--communities 100] [--seed 2016]
        [--records 100000] [--repeat 3] [--database-url postgresql://postgres@127.0.0.1/x]

``--database-url`` runs on PostgreSQL: one throw-away database per service is created under
that name (``x_registration`` …) and dropped at the end (default: SQLite in a temp dir).
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
from types import SimpleNamespace
from typing import Any

import harness
import sqlalchemy as sa
from sqlalchemy import and_, case, create_engine, func, insert, make_url, select, text

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
MONTH = 30 * 86_400  # the facts change within [T0, T0 + 30 days)
DISTRICT = "410303"
SERVICES = ("registration", "pairing", "reporting")


def later(rng: random.Random) -> datetime:
    """An instant in the month after T0 (never T0 itself: no empty intervals)."""
    return T0 + timedelta(seconds=rng.randint(1, MONTH - 1))


def runtimes(
    home: Path,
    database_url: str | None = None,
    urls: dict[str, str] | None = None,
    services: tuple[str, ...] = SERVICES,
) -> dict[str, Runtime]:
    """The three services' migrated databases: under one base URL (``x_registration`` …),
    or ``urls`` by service (throw-away databases of the harness), or SQLite under ``home``."""
    env = {"SERVICEMONTH_HOME": str(home), "SERVICEMONTH_PII_KEY": "11" * 32}
    if database_url:
        env["SERVICEMONTH_DATABASE_URL"] = database_url
    for service, url in (urls or {}).items():
        env[f"SERVICEMONTH_{service.upper()}_DATABASE_URL"] = url
    config = load(env)
    found = {}
    for service in services:
        rt = build(service, registry.metadata(service), config)
        upgrade(service, rt.db)
        found[service] = rt
    return found


def drop_databases(database_url: str) -> None:
    """Drop the throw-away PostgreSQL databases ``runtimes`` created under ``database_url``."""
    url = make_url(database_url)
    engine = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for service in SERVICES:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}_{service}" WITH (FORCE)'))
    engine.dispose()


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
                    # submitted at T0, confirmed then (a rejected one: rejected at T0)
                    "_confirmed_at": later(rng) if state == "confirmed" else None,
                }
            )
    pairings = []
    for m in members:
        for kind in ("need", "project"):
            if rng.random() < 0.7:
                state = "active" if rng.random() < 0.9 else "declined"
                made = later(rng)
                pairings.append(
                    {
                        "id": uuid.uuid4(),
                        "member_id": m["id"],
                        "kind": kind,
                        "community_code": rng.choice(codes),
                        "state": state,
                        "created_at": T0,
                        # active from then; a declined one was active until it was declined
                        "_made_at": made,
                        "_declined_at": made + (later(rng) - T0) / 4
                        if state == "declined"
                        else None,
                    }
                )
    records = []
    for _ in range(args.records):
        m = rng.choice(members)
        verified = rng.random() < 0.8
        records.append(
            {
                "id": uuid.uuid4(),
                "member_id": m["id"],
                "kind": rng.choice(KINDS),
                "community_code": m["residence_community_code"],
                "day": date(2016, 7, 1),
                "hours": rng.choice((1.0, 2.0, 2.5)),
                "state": "verified" if verified else "submitted",
                "created_at": T0,
                "_verified_at": later(rng) if verified else None,
            }
        )
    wishes, claims = [], []
    states = ("published", "claimed", "fulfilled", "confirmed", "expired", "pending_review")
    for _ in range(args.members // 4):
        state = rng.choice(states)
        wish = {"id": uuid.uuid4(), "community_code": rng.choice(codes), "title": "心愿"}
        # published (or in review) at T0; in its last state from then (a claim included)
        moved = later(rng) if state not in ("published", "pending_review") else None
        wishes.append({**wish, "state": state, "created_at": T0, "_moved_at": moved})
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


def columns(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows without the bench's own ``_``-keys (when each fact changed)."""
    return [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]


def bulk(conn: Any, table: Any, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` (dicts of the same keys): COPY on PostgreSQL, executemany on SQLite."""
    table = getattr(table, "__table__", table)
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(insert(table), rows)
        return
    names = list(rows[0])
    # COPY skips SQLAlchemy's client-side defaults: fill them in (a non-null column unset)
    defaults = {}
    for column in table.columns:
        if column.name not in names and column.default is not None:
            default = column.default
            defaults[column.name] = default.arg(None) if default.is_callable else default.arg
    if defaults:
        rows = [{**row, **defaults} for row in rows]
        names += list(defaults)
    raw = conn.connection.driver_connection
    with raw.cursor() as cur, cur.copy(f"COPY {table.name} ({', '.join(names)}) FROM STDIN") as cp:
        for row in rows:
            cp.write_row([row[n] for n in names])


def write_registration(rt: Runtime, data: dict[str, list[dict[str, Any]]]) -> None:
    with rt.db.engine.begin() as conn:
        bulk(conn, rm.Community, data["communities"])
        bulk(conn, rm.Unit, data["units"])
        bulk(conn, rm.Member, data["members"])
        bulk(conn, rm.CommunityRegistration, columns(data["registrations"]))


def write_sources(rts: dict[str, Runtime], data: dict[str, list[dict[str, Any]]]) -> None:
    write_registration(rts["registration"], data)
    with rts["pairing"].db.session() as s:
        s.execute(insert(pm.Pairing), columns(data["pairings"]))
        s.execute(insert(pm.ServiceRecord), columns(data["records"]))
        s.execute(insert(pm.Wish), columns(data["wishes"]))
        s.execute(insert(pm.WishClaim), data["claims"])
        s.commit()


def spans(
    key: dict[str, Any], changes: list[tuple[datetime, dict[str, Any]]]
) -> list[dict[str, Any]]:
    """The intervals of one fact that took ``changes`` (instant, values), in order."""
    return [
        {**key, **values, "valid_from": at, "valid_to": nxt[0] if nxt else None}
        for (at, values), nxt in zip(changes, [*changes[1:], None], strict=True)
    ]


def write_projections(rt: Runtime, data: dict[str, list[dict[str, Any]]]) -> None:
    """The same facts as reporting's projections hold them after the events: histories."""
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
    confirmed: dict[uuid.UUID, dict[str, datetime]] = defaultdict(dict)  # scope → since
    for r in data["registrations"]:
        if r["state"] in ("submitted", "confirmed"):
            counting[r["member_id"]].add(r["community_code"])
        if r["state"] == "confirmed":
            scope, at = f"community:{r['community_code']}", r["_confirmed_at"]
            confirmed[r["member_id"]][scope] = min(at, confirmed[r["member_id"]].get(scope, at))
    scopes, facts = [], []
    for m in data["members"]:
        unit = units[m["unit_code"]]
        mine = {"city", f"unit:{unit['code']}"} | {f"community:{c}" for c in counting[m["id"]]}
        if unit["district_code"] != CITY or counting[m["id"]]:
            mine.add(f"district:{DISTRICT}")
        anywhere = min(confirmed[m["id"]].values(), default=None)
        for s in sorted(mine):
            # reported in there: at a community, confirmed there; elsewhere, anywhere
            since = confirmed[m["id"]].get(s) if s.startswith("community:") else anywhere
            key = {"member_id": m["id"], "scope": s, "is_leader_cadre": m["is_leader_cadre"]}
            changes = [(T0, {"reported_in": False})]
            changes += [(since, {"reported_in": True})] if since else []
            scopes += spans(key, changes)
        facts.append(
            {
                "member_id": m["id"],
                "unit_code": unit["code"],
                "unit_district": unit["district_code"],
                "is_leader_cadre": m["is_leader_cadre"],
                "name_masked": "张*",
            }
        )
    registrations = []
    for r in data["registrations"]:
        key = {c: r[c] for c in ("member_id", "community_code", "role")}
        changes = [(T0, {"state": "submitted" if r["_confirmed_at"] else r["state"]})]
        changes += [(r["_confirmed_at"], {"state": "confirmed"})] if r["_confirmed_at"] else []
        registrations += spans({"registration_id": r["id"], **key}, changes)
    pairings = []
    for p in data["pairings"]:
        key = {"pairing_id": p["id"], **{c: p[c] for c in ("member_id", "kind", "community_code")}}
        changes = [(p["_made_at"], {"state": "active"})]
        changes += [(p["_declined_at"], {"state": "declined"})] if p["_declined_at"] else []
        pairings += spans(key, changes)
    holder = {c["wish_id"]: c["member_id"] for c in data["claims"]}
    wishes = []
    for w in data["wishes"]:
        key = {"wish_id": w["id"], "community_code": w["community_code"]}
        last = {"state": w["state"], "member_id": holder.get(w["id"])}
        changes = [(T0, last if not w["_moved_at"] else {"state": "published", "member_id": None})]
        changes += [(w["_moved_at"], last)] if w["_moved_at"] else []
        wishes += spans(key, changes)
    with rt.db.engine.begin() as s:
        bulk(s, xm.MemberStatus, standing(data))
        bulk(s, xm.Place, places)
        bulk(s, xm.MemberFact, facts)
        bulk(s, xm.MemberScope, scopes)
        bulk(s, xm.RegistrationState, registrations)
        bulk(s, xm.PairingState, pairings)
        bulk(
            s,
            xm.RecordFact,
            [
                {
                    "record_id": r["id"],
                    "member_id": r["member_id"],
                    "kind": r["kind"],
                    "community_code": r["community_code"],
                    "day": r["day"],
                    "hours": r["hours"],
                    "state": r["state"],
                    "verified_at": r["_verified_at"],
                }
                for r in data["records"]
            ],
        )
        bulk(s, xm.WishState, wishes)


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
    return count(units, members, regs, pairs, done, wishes, claims)


def facts_at(data: dict[str, list[dict[str, Any]]], t: datetime) -> dict[str, Any]:
    """The oracle's input as of ``t``: the raw tables' rows as they stood then (each fact's
    changes before ``t`` applied), for :func:`count` — no reporting code involved."""
    units = {u["code"]: SimpleNamespace(**u) for u in data["units"]}
    members = [SimpleNamespace(**m) for m in data["members"]]

    def before(at: datetime | None) -> bool:
        return at is not None and at < t

    def state(r: dict[str, Any]) -> str:  # a confirmed registration was submitted before
        return "submitted" if r["_confirmed_at"] and not before(r["_confirmed_at"]) else r["state"]

    regs = [
        (r["member_id"], r["community_code"], r["role"], state(r)) for r in data["registrations"]
    ]
    pairs = {
        (p["member_id"], p["kind"])
        for p in data["pairings"]
        if before(p["_made_at"]) and not before(p["_declined_at"])
    }
    hours: dict[tuple[uuid.UUID, str], float] = defaultdict(float)
    for r in data["records"]:
        if before(r["_verified_at"]):
            hours[r["member_id"], r["kind"]] += r["hours"]
    done = [(m, k, h) for (m, k), h in hours.items()]
    moved = {w["id"] for w in data["wishes"] if before(w["_moved_at"])}
    wishes = [
        (
            w["id"],
            w["community_code"],
            w["state"] if not w["_moved_at"] or w["id"] in moved else "published",
        )
        for w in data["wishes"]
    ]
    claims = {c["wish_id"]: c["member_id"] for c in data["claims"] if c["wish_id"] in moved}
    return {
        "units": units,
        "members": members,
        "regs": regs,
        "pairs": sorted(pairs),
        "done": done,
        "wishes": wishes,
        "claims": claims,
    }


def count(
    units: dict[str, Any],
    members: list[Any],
    regs: list[Any],
    pairs: list[Any],
    done: list[Any],
    wishes: list[Any],
    claims: dict[uuid.UUID, uuid.UUID],
) -> dict[str, Any]:
    """The city report's figures counted in Python from the raw tables' rows."""
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


def agree(model: dict[str, Any], raw: dict[str, Any], what: str) -> None:
    """The read model's figures equal the Python counts: the city, every ranking, the ranks."""
    assert same(model["city"], raw["city"]), (what, model["city"], raw["city"])
    for level in ("levels", "units", "communities"):
        ours, theirs = model[level], raw[level]
        assert [f.scope for _, f in ours] == [f.scope for _, f in theirs], (what, level)
        assert all(same(a, b) for (_, a), (_, b) in zip(ours, theirs, strict=True)), (what, level)


# --- the city summary: read model vs one SQL GROUP BY over the raw tables -----------------

RAW_PAIRING = (pm.Pairing, pm.ServiceRecord, pm.Wish)


def raw_copies() -> dict[str, sa.Table]:
    """Pairing's tables the summary reads, as copies to create beside registration's: the
    same columns and read indexes, without the foreign keys (their targets stay behind)."""
    metadata = sa.MetaData()
    found = {}
    for model in RAW_PAIRING:
        source = model.__table__
        table = sa.Table(
            source.name,
            metadata,
            *[sa.Column(c.name, c.type, primary_key=c.primary_key) for c in source.columns],
        )
        for index in source.indexes:
            if not index.unique:  # the partial unique keys guard writes, not reads
                sa.Index(index.name, *[table.c[c.name] for c in index.columns])
        found[source.name] = table
    return found


def write_raw_copies(rt: Runtime, data: dict[str, list[dict[str, Any]]]) -> dict[str, sa.Table]:
    """Pairing's raw rows, copied into registration's database (see the module's note)."""
    tables = raw_copies()
    with rt.db.engine.begin() as conn:
        for table in tables.values():
            table.create(conn)
        bulk(conn, tables["pairings"], columns(data["pairings"]))
        bulk(conn, tables["service_records"], columns(data["records"]))
        bulk(conn, tables["wishes"], columns(data["wishes"]))
    return tables


def city_by_group_by(rt: Runtime, raw: dict[str, sa.Table]) -> fig.Figures:
    """The city's figures (fig.values' rules) in one grouped statement over the raw tables,
    plus the wishes by state."""

    def flag(condition: Any) -> Any:
        return func.max(case((condition, 1), else_=0))

    def total(condition: Any) -> Any:
        return func.sum(case((condition, 1), else_=0))

    cr, pairings, records = rm.CommunityRegistration, raw["pairings"], raw["service_records"]
    confirmed = cr.state == "confirmed"
    reg = (
        select(
            cr.member_id,
            flag(confirmed).label("reported"),
            flag(and_(confirmed, cr.role == "unit")).label("unit_ok"),
            flag(and_(confirmed, cr.role == "residence")).label("home_ok"),
        )
        .group_by(cr.member_id)
        .subquery("reg")
    )
    pair = (
        select(
            pairings.c.member_id,
            flag(pairings.c.kind == "need").label("need"),
            flag(pairings.c.kind == "project").label("project"),
        )
        .where(pairings.c.state == "active")
        .group_by(pairings.c.member_id)
        .subquery("pair")
    )
    rec = (
        select(
            records.c.member_id,
            *[flag(records.c.kind == k).label(k) for k in KINDS],
            func.sum(records.c.hours).label("hours"),
        )
        .where(records.c.state == "verified")
        .group_by(records.c.member_id)
        .subquery("rec")
    )
    m = rm.Member
    reported = reg.c.reported == 1
    query = (
        select(
            func.count().label("members"),
            total(reported).label("reported_in"),
            total(and_(reported, reg.c.unit_ok == 1, reg.c.home_ok == 1)).label("dual_reg"),
            total(and_(reported, pair.c.need == 1, pair.c.project == 1)).label("dual_paired"),
            total(and_(reported, *[rec.c[k] == 1 for k in KINDS])).label("complete"),
            *[total(and_(reported, rec.c[k] == 1)).label(k) for k in KINDS],
            func.coalesce(func.sum(rec.c.hours), 0).label("hours"),
            total(m.is_leader_cadre).label("cadres"),
            total(and_(m.is_leader_cadre, rec.c.member_id.is_not(None))).label("active"),
        )
        .select_from(
            sa.outerjoin(m, reg, reg.c.member_id == m.id)
            .outerjoin(pair, pair.c.member_id == m.id)
            .outerjoin(rec, rec.c.member_id == m.id)
        )
        .where(m.state == "active")
    )
    wishes = raw["wishes"]
    with rt.db.reader() as session:
        row = session.execute(query).one()
        rows = session.execute(select(wishes.c.state, func.count()).group_by(wishes.c.state))
        by_state = {state: int(n) for state, n in rows}
    return fig.Figures(
        scope="city",
        name="city",
        members=int(row.members),
        reported_in=int(row.reported_in or 0),
        dual_registered=int(row.dual_reg or 0),
        dual_paired=int(row.dual_paired or 0),
        five_ones_complete=int(row.complete or 0),
        five_ones={k: int(getattr(row, k) or 0) for k in KINDS},
        wishes=by_state,
        verified_hours=round(float(row.hours or 0), 2),
        leading_cadres=int(row.cadres or 0),
        leading_cadres_active=int(row.active or 0),
    )


def city_from_read_model(rt: Runtime) -> fig.Figures:
    with rt.db.reader() as session, rt.uow() as uow:
        del session
        return fig.figures(uow, "city")


def summary(ctx: harness.Context, backend: str, repeat: int = 7) -> harness.Result:
    """One row: the city summary on ``backend``, ours against the SQL baseline."""
    members = ctx.members()
    args = argparse.Namespace(
        members=members,
        communities=max(10, members // 200),
        records=5 * members,
        seed=ctx.seed,
    )
    home = ctx.folder(f"reporting-{backend}")
    services = ("registration", "reporting")
    urls = (
        {s: ctx.database(f"reporting_{s}") for s in services} if backend == "postgresql" else None
    )
    rts = runtimes(home, urls=urls, services=services)
    try:
        data = generate(args)
        write_registration(rts["registration"], data)
        write_projections(rts["reporting"], data)
        raw = write_raw_copies(rts["registration"], data)
        if backend == "postgresql":  # fresh tables: let the planner see them, as autovacuum would
            for service in ("registration", "reporting"):
                engine = rts[service].db.engine
                with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                    c.execute(text("VACUUM ANALYZE"))
        ours_s, ours = best(lambda: city_from_read_model(rts["reporting"]), repeat)
        base_s, base = best(lambda: city_by_group_by(rts["registration"], raw), repeat)
        oracle = count(**facts_at(data, T0 + timedelta(days=40)))["city"]  # Python, the facts
        assert same(ours, oracle), ("read model", ours, oracle)
        assert same(base, oracle), ("GROUP BY", base, oracle)
        name = {"postgresql": "PostgreSQL", "sqlite": "SQLite"}[backend]
        return harness.faster(
            f"city summary: read model vs SQL GROUP BY over raw tables ({name})",
            ours_s,
            base_s,
            10,
            note=(
                f"{members:,} members, {len(data['records']):,} records, best of {repeat}; "
                "the baseline joins registration's tables and copies of pairing's in one "
                "database; both equal a Python count of the facts"
            ),
        )
    finally:
        for rt in rts.values():
            rt.db.dispose()


def measure(ctx: harness.Context) -> list[harness.Result]:
    """PostgreSQL (the target) and SQLite (reported alongside)."""
    results = []
    if ctx.postgres:
        results.append(summary(ctx, "postgresql"))
    results.append(summary(ctx, "sqlite"))
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--communities", type=int, default=100)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=2016)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url", help="a throw-away PostgreSQL database name")
    parser.add_argument("--scale", type=float, help="measure(ctx) at this scale instead")
    parser.add_argument("--embedded", action="store_true", help="with --scale: SQLite only")
    args = parser.parse_args(argv)
    if args.scale:
        ctx = harness.Context(scale=args.scale, seed=1 if args.seed == 2016 else args.seed)
        if args.embedded:
            ctx.postgres = None
        harness.show(ctx, measure)
        return
    with tempfile.TemporaryDirectory() as home:
        rts = runtimes(Path(home), args.database_url)
        try:
            run(args, rts)
        finally:
            for rt in rts.values():
                rt.db.dispose()
            if args.database_url:
                drop_databases(args.database_url)


def run(args: argparse.Namespace, rts: dict[str, Runtime]) -> None:
    data = generate(args)
    started = time.perf_counter()
    write_sources(rts, data)
    write_projections(rts["reporting"], data)
    backend = rts["reporting"].db.engine.dialect.name
    print(
        f"dataset: {len(data['members'])} members, {len(data['registrations'])} registrations, "
        f"{len(data['pairings'])} pairings, {len(data['records'])} records, "
        f"{len(data['wishes'])} wishes on {backend} "
        f"(written in {time.perf_counter() - started:.1f} s)"
    )
    reporting = rts["reporting"]
    if backend == "postgresql":  # fresh tables: let the planner see them, as autovacuum would
        with reporting.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(text("VACUUM ANALYZE"))
    middle = T0 + timedelta(days=15)  # a closed period's end: half the changes made
    after = T0 + timedelta(days=40)  # after every change
    model_s, model = best(lambda: from_read_model(reporting), args.repeat)
    asof_s, asof = best(lambda: from_read_model(reporting, middle), args.repeat)
    raw_s, raw = best(lambda: from_raw_tables(rts), args.repeat)
    agree(model, raw, "live")
    assert from_read_model(reporting, after) == model, "as of after every change: the live"
    agree(asof, count(**facts_at(data, middle)), f"as of {middle}")
    assert asof != model, "the middle of the month differs from its end (histories are read)"
    print(f"read model : {model_s * 1000:8.1f} ms  (city + 3 rankings, best of {args.repeat})")
    print(f"as of (t)  : {asof_s * 1000:8.1f} ms  (the same as of mid-month: the histories)")
    print(f"raw tables : {raw_s * 1000:8.1f} ms  (registration + pairing tables, Python counts)")
    print(f"ratio      : {raw_s / model_s:8.2f}x  (raw / read model)")
    print(f"ratio      : {raw_s / asof_s:8.2f}x  (raw / as of); all agree with the Python counts")


if __name__ == "__main__":
    main()
