"""Benchmark: the 双对接 engine at district scale against a greedy baseline, in one run.

A synthetic district (≈ 20,000 members over ≈ 100 communities, each member confirmed in
their unit's and their residence community and sometimes a contact one; ≈ 2,000 needs and
≈ 500 projects) is paired twice: by :func:`services.pairing.engine.solve` (exact min-cost
flow) and by the loop a spreadsheet user would write — leaders first, then everyone in
order, each taking the best place still open. Both are scored by the same rules.

    .venv/bin/python bench/pairing.py [--members 20000] [--communities 100] [--seed 2016]
        [--skilled 0.6] [--end-to-end [DATABASE_URL]]

``--skilled`` is the share of needs that ask for a particular skill (projects: half that);
``--end-to-end`` also times a whole district run of the service (load, solve, insert the
pairings and their events) on a fresh database: SQLite in a temporary folder by default.
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter
from collections.abc import Sequence

from services.pairing import engine
from services.pairing.engine import Candidate, Kind, Limits, Slot
from services.pairing.needs import AFFINITY
from shared.vocabulary import AVAILABILITY, PROJECT_KINDS, SKILLS, TARGET_CATEGORIES


def district(
    members: int, needs: int, projects: int, communities: int, seed: int, skilled: float = 0.6
) -> tuple[list[Candidate], list[Slot]]:
    rng = random.Random(seed)
    codes = [f"410303{1 + c // 10:03d}{1 + c % 10:03d}" for c in range(communities)]

    def when() -> frozenset[str]:
        return frozenset(rng.sample(AVAILABILITY, rng.randint(1, 2)))

    people = []
    for i in range(members):
        unit, home = rng.choice(codes), rng.choice(codes)
        registered = {unit, home} | ({rng.choice(codes)} if rng.random() < 0.2 else set())
        people.append(
            Candidate(
                id=i,
                communities=frozenset(c for c in sorted(registered) if rng.random() < 0.9),  # 报到
                skills=frozenset(rng.sample(SKILLS, rng.randint(1, 3))),
                availability=when(),
                residence=home,
                leader=rng.random() < 0.05,
            )
        )
    slots = []
    for j in range(needs):
        category = rng.choice(TARGET_CATEGORIES[:6])
        slots.append(
            Slot(
                id=f"n{j}",
                kind="need",
                community=codes[j % communities],
                title=f"need {j}",
                places=rng.randint(1, 5),
                required_skill=rng.choice(SKILLS) if rng.random() < skilled else None,
                affinity=AFFINITY[category],
                availability=when(),
            )
        )
    for k in range(projects):
        kind = rng.choice(PROJECT_KINDS[:6])
        slots.append(
            Slot(
                id=f"p{k}",
                kind="project",
                community=codes[k % communities],
                title=f"project {k}",
                places=rng.randint(10, 40),
                required_skill=rng.choice(SKILLS) if rng.random() < skilled / 2 else None,
                affinity=AFFINITY[kind],
                availability=when(),
            )
        )
    return people, slots


def greedy(members: Sequence[Candidate], slots: Sequence[Slot], limits: Limits) -> engine.Outcome:
    """Leaders first, then in order, each takes the best open need and the best open project;
    further rounds bring everyone up to the load cap the same way."""
    options: list[list[tuple[int, int]]] = [[] for _ in members]
    for i, j, score in engine.edges(members, slots, ()):
        options[i].append((score, j))
    for found in options:
        found.sort(reverse=True)
    left = [s.places for s in slots]
    load: Counter[tuple[int, str]] = Counter()
    held: set[tuple[int, int]] = set()
    chosen: list[engine.Assignment] = []
    order = sorted(range(len(members)), key=lambda i: not members[i].leader)
    kinds: tuple[Kind, ...] = ("need", "project")
    for target in range(1, max(limits.needs, limits.projects) + 1):
        for i in order:
            for kind in kinds:
                if load[i, kind] >= min(target, limits.of(kind)):
                    continue
                for _, j in options[i]:
                    if slots[j].kind == kind and left[j] > 0 and (i, j) not in held:
                        left[j] -= 1
                        load[i, kind] += 1
                        held.add((i, j))
                        match = engine.match(members[i], slots[j])
                        assert match is not None
                        chosen.append(engine.Assignment(members[i].id, slots[j], match))
                        break
    return engine.summarise(members, chosen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--needs", type=int, default=2_000)
    parser.add_argument("--projects", type=int, default=500)
    parser.add_argument("--communities", type=int, default=100)
    parser.add_argument("--seed", type=int, default=2016)
    parser.add_argument("--skilled", type=float, default=0.6)
    parser.add_argument("--end-to-end", nargs="?", const="", metavar="DATABASE_URL")
    args = parser.parse_args()
    members, slots = district(
        args.members, args.needs, args.projects, args.communities, args.seed, args.skilled
    )
    limits = Limits()
    started = time.perf_counter()
    pairs = sum(1 for _ in engine.edges(members, slots, ()))
    edge_seconds = time.perf_counter() - started

    started = time.perf_counter()
    exact = engine.solve(members, slots, limits)
    exact_seconds = time.perf_counter() - started
    started = time.perf_counter()
    baseline = greedy(members, slots, limits)
    greedy_seconds = time.perf_counter() - started

    places = {k: sum(s.places for s in slots if s.kind == k) for k in ("need", "project")}
    report = [
        f"members {len(members):,} (leading cadres {exact.leaders:,}), "
        f"communities {args.communities}",
        f"needs {args.needs:,} ({places['need']:,} places), "
        f"projects {args.projects:,} ({places['project']:,} places)",
        f"allowed pairs {pairs:,}; flow network arcs {exact.arcs:,}",
        f"load cap {limits.needs} needs + {limits.projects} projects per member",
        "",
        f"{'':16}{'seconds':>9}{'dual-paired':>13}{'leaders':>9}{'pairings':>10}{'score':>11}",
    ]
    for name, o, sec in (
        ("engine (exact)", exact, exact_seconds),
        ("greedy", baseline, greedy_seconds),
    ):
        report.append(
            f"{name:16}{sec:9.2f}{o.dual_paired:13,}{o.leaders_dual_paired:9,}"
            f"{len(o.assignments):10,}{o.score:11,}"
        )
    report += [
        "",
        f"finding the allowed pairs (in both): {edge_seconds:.2f} s",
        f"engine / greedy: dual-paired {exact.dual_paired / baseline.dual_paired:.3f}, "
        f"leaders {exact.leaders_dual_paired / max(1, baseline.leaders_dual_paired):.3f}, "
        f"score {exact.score / baseline.score:.3f}, time {exact_seconds / greedy_seconds:.1f}x",
    ]
    print("\n".join(report))
    if args.end_to_end is not None:
        end_to_end(members, slots, args.end_to_end or None)


def end_to_end(members: list[Candidate], slots: list[Slot], url: str | None) -> None:
    """Time ``pairings.run`` for the district on a fresh pairing database."""
    import tempfile
    import uuid
    from datetime import UTC, datetime

    from sqlalchemy import insert

    from services.pairing import pairings
    from services.pairing.models import Base, MemberReplica, Need, Project
    from shared.config import load
    from shared.migrations import upgrade
    from shared.runtime import build

    home = tempfile.TemporaryDirectory(prefix="sm-bench-")  # SQLite lives here
    env = {"SERVICEMONTH_HOME": home.name}
    if url:
        env["SERVICEMONTH_DATABASE_URL"] = url  # left in place: drop it afterwards
    rt = build("pairing", Base.metadata, load(env))
    upgrade("pairing", rt.db)
    now, named = datetime.now(UTC), {v: k for k, v in AFFINITY.items()}
    with rt.uow() as uow:
        uow.session.execute(insert(MemberReplica), [_replica(m, now) for m in members])
        for s in slots:
            common = {"id": uuid.uuid4(), "community_code": s.community, "title": s.title}
            common |= {"required_skill": s.required_skill, "created_at": now}
            common |= {"availability": sorted(s.availability)}
            if s.kind == "need":
                category = None if s.required_skill else named[s.affinity]
                uow.session.add(Need(**common, category=category, volunteers_needed=s.places))
            else:
                uow.session.add(Project(**common, kind=named[s.affinity], capacity=s.places))
        uow.commit()
    print(f"\nend to end on {rt.db.engine.url.get_backend_name()} (pairings.run, district):")
    for label in ("first run", "second run, nothing to add"):
        started = time.perf_counter()
        with rt.uow() as uow:
            done = pairings.run(uow, pairings.Scope("district", "410303"), Limits())
            uow.commit()
        print(f"  {label}: {time.perf_counter() - started:.2f} s, {done['created']:,} pairings")
    rt.db.dispose()
    home.cleanup()


def _replica(m: Candidate, now: object) -> dict[str, object]:
    import uuid

    communities = [
        {"code": c, "role": "residence" if c == m.residence else "unit", "state": "confirmed"}
        | {"registration_id": str(uuid.uuid4())}
        for c in sorted(m.communities)
    ]
    return {
        "id": uuid.uuid4(),
        "unit_code": "U410303001",
        "communities": communities,
        "skills": sorted(m.skills),
        "availability": sorted(m.availability),
        "is_leader_cadre": m.leader,
        "registered_at": now,
    }


if __name__ == "__main__":
    main()
