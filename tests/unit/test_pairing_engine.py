"""The 双对接 engine against independent solvers, and its rules: stability, leaders first,
declined pairs never offered again, skills, confirmed communities only, load cap."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Hashable
from dataclasses import replace

import numpy as np
import pytest
from scipy.optimize import LinearConstraint, linear_sum_assignment, milp
from scipy.sparse import lil_matrix

from services.pairing.engine import (
    Candidate,
    Limits,
    Outcome,
    Slot,
    match,
    penalty,
    solve,
)
from services.pairing.pairings import limits_from
from services.pairing.report import why_uncovered, why_unpaired
from shared.config import ConfigError, load
from shared.vocabulary import AVAILABILITY, SKILLS

Pair = tuple[Hashable, Hashable]


def instance(
    seed: int,
    members: int = 300,
    needs: int = 100,
    projects: int = 14,
    first_id: int = 0,
    skilled: float = 0.85,
) -> tuple[list[Candidate], list[Slot]]:
    """Random communities: members confirmed in 1-2 of 5, with 1-2 of 8 skills; most needs
    and some projects ask for a skill, so who can serve where is tight."""
    rng = random.Random(seed)
    communities = [f"C{c}" for c in range(5)]
    skills = SKILLS[:8]

    def when() -> frozenset[str]:
        return frozenset(rng.sample(AVAILABILITY, rng.randint(0, 2)))

    people = [
        Candidate(
            id=first_id + i,
            communities=frozenset(rng.sample(communities, rng.randint(1, 2))),
            skills=frozenset(rng.sample(skills, rng.randint(1, 2))),
            availability=when(),
            residence=rng.choice(communities),
            leader=rng.random() < 0.08,
        )
        for i in range(members)
    ]
    slots = [
        Slot(
            id=f"n{seed}-{j}",
            kind="need",
            community=rng.choice(communities),
            title=f"need {j}",
            places=rng.randint(1, 3),
            required_skill=rng.choice(skills) if rng.random() < skilled else None,
            affinity=frozenset(rng.sample(skills, 2)),
            availability=when(),
        )
        for j in range(needs)
    ] + [
        Slot(
            id=f"p{seed}-{k}",
            kind="project",
            community=rng.choice(communities),
            title=f"project {k}",
            places=rng.randint(3, 20),
            required_skill=rng.choice(skills) if rng.random() < skilled / 2 else None,
            affinity=frozenset(rng.sample(skills, 2)),
            availability=when(),
        )
        for k in range(projects)
    ]
    return people, slots


def lexicographic_milp(
    members: list[Candidate], slots: list[Slot], limits: Limits, excluded: set[Pair]
) -> tuple[int, int, int]:
    """(leaders dual-paired, members dual-paired, score) by HiGHS, one objective at a time."""
    edges = [
        (i, j, m.score)
        for i, member in enumerate(members)
        for j, slot in enumerate(slots)
        if (m := match(member, slot)) and (member.id, slot.id) not in excluded
    ]
    units = [  # (member, kind, k): the member's k-th pairing of that kind, costing penalty(k)
        (i, kind, k)
        for i, m in enumerate(members)
        for kind in ("need", "project")
        for k in range(m.held(kind) + 1, limits.of(kind) + 1)
    ]
    gain = [i for i, m in enumerate(members) if not m.dual]
    nx, nu, ny = len(edges), len(units), len(gain)
    of_slot: dict[int, list[int]] = defaultdict(list)
    of_member: dict[tuple[int, str], list[int]] = defaultdict(list)
    for e, (i, j, _) in enumerate(edges):
        of_slot[j].append(e)
        of_member[i, slots[j].kind].append(e)
    units_of: dict[tuple[int, str], list[int]] = defaultdict(list)
    for u, (i, kind, _) in enumerate(units):
        units_of[i, kind].append(nx + u)
    rows: list[tuple[dict[int, float], float, float]] = [
        (dict.fromkeys(of_slot[j], 1.0), 0, slot.places) for j, slot in enumerate(slots)
    ]
    for i in range(len(members)):
        for kind in ("need", "project"):  # pairings of a kind = its units, at most the cap
            row = dict.fromkeys(of_member[i, kind], 1.0) | dict.fromkeys(units_of[i, kind], -1.0)
            rows.append((row, 0, 0))
    for y, i in enumerate(gain):
        for kind in ("need", "project"):
            if not members[i].held(kind):  # type: ignore[arg-type]
                row = dict.fromkeys(of_member[i, kind], -1.0) | {nx + nu + y: 1.0}
                rows.append((row, -np.inf, 0))  # dual-paired only if paired both ways
    leaders = np.zeros(nx + nu + ny)
    for y, i in enumerate(gain):
        leaders[nx + nu + y] = members[i].leader
    everyone = np.concatenate([np.zeros(nx + nu), np.ones(ny)])
    score = np.concatenate(
        [[s for _, _, s in edges], [-penalty(k) for _, _, k in units], np.zeros(ny)]
    )
    integrality = np.concatenate([np.ones(nx), np.zeros(nu), np.ones(ny)])
    found = []
    for objective in (leaders, everyone, score):
        a = lil_matrix((len(rows), nx + nu + ny))
        for r, (row, _, _) in enumerate(rows):
            for col, value in row.items():
                a[r, col] = value
        constraint = LinearConstraint(a.tocsr(), [lo for _, lo, _ in rows], [hi for *_, hi in rows])
        result = milp(-objective, constraints=constraint, integrality=integrality, bounds=(0, 1))
        assert result.success, result.message
        best = round(-result.fun)
        found.append(best)
        rows.append(({c: v for c, v in enumerate(objective) if v}, best - 0.5, np.inf))
    already = [m for m in members if m.dual]
    return (
        found[0] + sum(m.leader for m in already),
        found[1] + len(already),
        found[2],
    )


def result(outcome: Outcome) -> tuple[int, int, int]:
    return outcome.leaders_dual_paired, outcome.dual_paired, outcome.score


def check_rules(outcome: Outcome, members: list[Candidate], limits: Limits) -> None:
    by_id = {m.id: m for m in members}
    taken = Counter(a.slot.id for a in outcome.assignments)
    assert all(taken[s.id] <= s.places for s in {a.slot for a in outcome.assignments})
    assert len({(a.member_id, a.slot.id) for a in outcome.assignments}) == len(outcome.assignments)
    load = Counter((a.member_id, a.slot.kind) for a in outcome.assignments)
    for (member_id, kind), count in load.items():
        assert by_id[member_id].held(kind) + count <= limits.of(kind)
    for a in outcome.assignments:
        assert a.slot.community in by_id[a.member_id].communities
        assert a.slot.required_skill in (None, *by_id[a.member_id].skills)


# --- optimality against independent solvers -----------------------------------------------


@pytest.mark.parametrize("seed", [1, 3, 7])
def test_the_engine_reaches_the_lexicographic_optimum_of_an_independent_milp(seed: int) -> None:
    members, slots = instance(seed)
    limits = Limits(needs=2, projects=1 + seed % 2)
    outcome = solve(members, slots, limits)
    check_rules(outcome, members, limits)
    assert result(outcome) == lexicographic_milp(members, slots, limits, set())


def test_with_existing_and_declined_pairings_the_optimum_still_matches_the_milp() -> None:
    members, slots = instance(7)
    first = solve(members[:150], slots)
    held = Counter((a.member_id, a.slot.kind) for a in first.assignments)
    taken = Counter(a.slot.id for a in first.assignments)
    declined = {(m.id, s.id) for m, s in zip(members[150:200], slots, strict=False)}
    excluded = {(a.member_id, a.slot.id) for a in first.assignments} | declined
    members = [
        replace(m, needs_held=held[m.id, "need"], projects_held=held[m.id, "project"])
        for m in members
    ]
    slots = [replace(s, places=s.places - taken[s.id]) for s in slots]
    outcome = solve(members, slots, Limits(), excluded)
    check_rules(outcome, members, Limits())
    assert not {(a.member_id, a.slot.id) for a in outcome.assignments} & excluded
    assert result(outcome) == lexicographic_milp(members, slots, Limits(), excluded)


def test_with_needs_only_the_score_equals_linear_sum_assignment_on_the_expanded_places() -> None:
    members, slots = instance(11, members=200, needs=80, projects=0)
    outcome = solve(members, slots, Limits(needs=1, projects=0))
    places = [s for s in slots for _ in range(s.places)]  # one column per open place
    value = np.array([[(m.score if (m := match(p, s)) else 0) for s in places] for p in members])
    rows, cols = linear_sum_assignment(value, maximize=True)
    assert outcome.score == value[rows, cols].sum()
    assert len(outcome.assignments) == np.count_nonzero(value[rows, cols])


def test_every_member_who_can_be_dual_paired_is_when_places_suffice() -> None:
    members, slots = instance(5, members=150)
    slots = [replace(s, places=200) for s in slots]
    outcome = solve(members, slots)
    got = {(a.member_id, a.slot.kind) for a in outcome.assignments}
    for m in members:
        could = {s.kind for s in slots if match(m, s)}
        assert could <= {k for (member_id, k) in got if member_id == m.id}
    assert outcome.dual_paired == sum(
        1 for m in members if {"need", "project"} <= {s.kind for s in slots if match(m, s)}
    )


# --- the rules ------------------------------------------------------------------------------


def test_an_incremental_run_keeps_every_existing_pairing_and_only_adds() -> None:
    members, slots = instance(9)
    first = solve(members, slots)
    newcomers, _ = instance(10, members=100, first_id=10_000)
    held = Counter((a.member_id, a.slot.kind) for a in first.assignments)
    taken = Counter(a.slot.id for a in first.assignments)
    everyone = [
        replace(m, needs_held=held[m.id, "need"], projects_held=held[m.id, "project"])
        for m in members + newcomers
    ]
    left = [replace(s, places=s.places - taken[s.id]) for s in slots]
    kept = {(a.member_id, a.slot.id) for a in first.assignments}
    second = solve(everyone, left, Limits(), kept)
    check_rules(second, everyone, Limits())
    both = Counter(a.slot.id for a in first.assignments + second.assignments)
    assert all(both[s.id] <= s.places for s in slots)
    assert not kept & {(a.member_id, a.slot.id) for a in second.assignments}
    assert second.dual_paired >= first.dual_paired


def _leader_and_two(leader_first: bool) -> Outcome:
    """Pairing the leader (n1 and p1) leaves A without a need and B without a project."""
    leader = Candidate("L", frozenset({"c1"}), leader=True)
    a = Candidate("A", frozenset({"c1", "c2"}), skills=frozenset({"医疗护理"}), residence="c1")
    b = Candidate("B", frozenset({"c1", "c3"}), skills=frozenset({"医疗护理"}), residence="c1")
    slots = [
        Slot("n1", "need", "c1", "探访空巢老人", 1),
        Slot("p1", "project", "c1", "治安巡逻", 1),
        Slot("p2", "project", "c2", "环境卫生", 1),
        Slot("n3", "need", "c3", "健康咨询", 1),
    ]
    return solve([leader, a, b] if leader_first else [a, b, leader], slots)


def test_leading_cadres_are_paired_first_even_when_that_costs_others_their_pairing() -> None:
    for order in (True, False):
        outcome = _leader_and_two(order)
        assert outcome.leaders_dual_paired == 1
        assert outcome.dual_paired == 1  # without the leader first, A and B would both be


def test_leaders_with_poor_matches_win_the_short_places() -> None:
    people = [
        Candidate(f"m{i}", frozenset({"c"}), frozenset({"医疗护理"}), residence="c")
        for i in range(4)
    ]
    people += [Candidate(f"L{i}", frozenset({"c"}), leader=True) for i in range(2)]
    slots = [Slot("n", "need", "c", "need", 2), Slot("p", "project", "c", "project", 2)]
    outcome = solve(people, slots)
    assert {a.member_id for a in outcome.assignments} == {"L0", "L1"}


def test_a_declined_pair_is_never_offered_again() -> None:
    member = Candidate("m", frozenset({"c"}), frozenset({"医疗护理"}))
    best = Slot("n1", "need", "c", "best", 1, required_skill="医疗护理")
    other = Slot("n2", "need", "c", "other", 1)
    assert [a.slot.id for a in solve([member], [best, other], Limits(1, 1)).assignments] == ["n1"]
    again = solve([member], [best, other], Limits(1, 1), excluded={("m", "n1")})
    assert [a.slot.id for a in again.assignments] == ["n2"]
    assert solve([member], [best], Limits(1, 1), excluded={("m", "n1")}).assignments == []


def test_pairings_stay_in_confirmed_communities_and_respect_required_skills() -> None:
    member = Candidate("m", frozenset({"here"}), frozenset({"法律咨询"}))
    slots = [
        Slot("elsewhere", "need", "there", "x", 5),
        Slot("skilled", "need", "here", "x", 5, required_skill="医疗护理"),
        Slot("fits", "need", "here", "x", 5, required_skill="法律咨询"),
    ]
    outcome = solve([member], slots)
    assert [a.slot.id for a in outcome.assignments] == ["fits"]
    assert outcome.assignments[0].reason() == {
        "title": "x", "skill": "法律咨询", "availability": "", "lives_here": "no"
    }  # fmt: skip


def test_load_is_spread_and_capped() -> None:
    twins = [Candidate(i, frozenset({"c"})) for i in range(2)]
    needs = [Slot(f"n{j}", "need", "c", "x", 1) for j in range(2)]
    spread = solve(twins, needs)
    assert {a.member_id for a in spread.assignments} == {0, 1}
    alone = solve(twins[:1], [Slot(f"n{j}", "need", "c", "x", 1) for j in range(5)])
    assert len(alone.assignments) == Limits().needs
    assert alone.score == 2 * 20 - penalty(2)  # BASE + availability unknown, twice


def test_the_report_reasons_say_why_nothing_was_paired() -> None:
    skilled = Slot("n", "need", "c", "x", 1, required_skill="医疗护理")
    full = Slot("p", "project", "c", "x", 0)
    member = Candidate("m", frozenset({"c"}), frozenset({"法律咨询"}))
    assert why_unpaired(member, "need", [skilled]) == "no_matching_skill"
    assert why_unpaired(member, "project", [full]) == "no_capacity"
    assert why_unpaired(Candidate("x", frozenset()), "need", [skilled]) == "not_confirmed"
    assert why_unpaired(member, "need", [Slot("o", "need", "c", "x", 1)]) == "awaiting_run"
    assert why_uncovered(skilled, [member], Limits()) == "no_matching_skill"
    assert why_uncovered(skilled, [], Limits()) == "no_confirmed_member"
    busy = Candidate("b", frozenset({"c"}), frozenset({"医疗护理"}), needs_held=2)
    assert why_uncovered(skilled, [busy], Limits()) == "members_at_load_cap"


def test_the_load_cap_is_configured_per_service() -> None:
    assert limits_from(load({})) == Limits(2, 2)
    env = {
        "SERVICEMONTH_PAIRING_MAX_NEEDS_PER_MEMBER": "3",
        "SERVICEMONTH_MAX_PROJECTS_PER_MEMBER": "1",
    }
    assert limits_from(load(env)) == Limits(3, 1)
    with pytest.raises(ConfigError, match="MAX_NEEDS"):
        limits_from(load({"SERVICEMONTH_PAIRING_MAX_NEEDS_PER_MEMBER": "0"}))


def test_parts_no_member_joins_are_solved_apart_with_the_optimum_of_the_whole() -> None:
    """Two towns whose communities no member shares: the engine solves each part alone (with
    weights sized to it) and the union is the whole's lexicographic optimum."""
    east_members, east_slots = instance(11, members=90, needs=30, projects=6)
    west_members, west_slots = instance(12, members=90, needs=30, projects=6, first_id=1000)

    def moved(c: str) -> str:
        return f"W{c}"

    west_members = [
        replace(m, communities=frozenset(map(moved, m.communities)), residence=moved(m.residence))
        for m in west_members
    ]
    west_slots = [replace(s, id=f"W{s.id}", community=moved(s.community)) for s in west_slots]
    members, slots = east_members + west_members, east_slots + west_slots
    heard: list[tuple[int, int]] = []
    outcome = solve(members, slots, Limits(), on_component=lambda *done: heard.append(done))
    assert heard[-1] == (2, 2)
    check_rules(outcome, members, Limits())
    assert result(outcome) == lexicographic_milp(members, slots, Limits(), set())
    apart = [solve(east_members, east_slots), solve(west_members, west_slots)]
    assert result(outcome) == tuple(map(sum, zip(*map(result, apart), strict=True)))
