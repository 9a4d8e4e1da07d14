"""双对接 engine — which member serves which need (需求清单) and which project (服务项目).

Pure: members and open places in, new pairings out; no database, no clock, no I/O.

**The problem.** A member may be paired only in a community where their registration is
confirmed (报到确认), with at most ``Limits.needs`` needs and ``Limits.projects`` projects
in all (existing pairings included), never twice with the same need or project, and never
with one listed in ``excluded`` (declined, removed by staff, or already held). A need with
a ``required_skill`` takes only members who have that skill. Among all assignments that
respect this, the engine picks the best one, lexicographically:

1. the most leading cadres (县处级以上) with ≥ 1 need **and** ≥ 1 project (双对接);
2. then the most members with both;
3. then the highest total score: Σ :func:`match` score of the new pairings (skill ↔
   required skill or the category's/kind's skills, availability, living in the community)
   minus the load-spread penalty ``SPREAD·(k−1)`` for a member's k-th pairing of a kind.

**Stability.** Existing pairings are inputs, never outputs: they only lower the places
left and raise the members' held counts, and their pairs are ``excluded``; a run only adds.

**The flow network** (one min-cost flow, solved exactly by OR-Tools). Per member ``i`` four
nodes: ``G`` gathers need units, ``I`` splits them, ``O`` gathers project units, ``H``
hands them out::

    s → need(j) ─[1, −score]→ G_i ─[k-th unit: +penalty(k)]→ I_i ─[exit]→ t
                                                             I_i ─[bridge: 1, −W_i]→ O_i
    s ─[entry]→ O_i ─[k-th unit: +penalty(k)]→ H_i ─[1, −score]→ project(k) → t

``s → need(j)`` and ``project(k) → t`` carry the places left. A unit on ``need → G → I →
O → H → project`` pairs the member with a need *and* a project, and the bridge (capacity 1)
pays the coverage bonus ``W_i`` once. A member already holding a need (project) gets the
bonus on the first project entry (need exit) instead, and one already dual-paired gets
none. A zero-cost arc ``s → t`` lets the solver leave unprofitable units unused, so the
minimum cost is the maximum of ``W_L·leaders + W_M·others + score`` over all integral
assignments (arc capacities are integers, so the optimal flow is integral; a solution that
pairs a member both ways without the bridge can be rerouted through it at no loss, so at the
optimum every dual pairing earns its bonus).

**Why the weights are lexicographic.** With ``P`` the most new pairings possible, the score
part of any two assignments differs by less than ``W_M = P·(MAX_SCORE + max penalty) + 1``
(scores and penalties counted in :data:`UNIT`, their common divisor),
so one more dual-paired member outweighs any score; the member part differs by less than
``W_L = (N + 1)·W_M`` (``N`` the other members who could gain the bonus), so one more leader
outweighs both. The weights are sized to each connected part of the allowed pairs (see
:func:`solve`). Counted in :data:`UNIT`, a city of 200,000 members (about 215,000 places,
800,000 nodes) has ``W_L ≈ 8·10¹¹``, so ``cost × nodes ≈ 6·10¹⁷``, well below OR-Tools'
bound (2⁶³ ≈ 9·10¹⁸); beyond it the solver answers ``BAD_COST_RANGE`` and :func:`solve`
says so.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Collection, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from ortools.graph.python import min_cost_flow

Kind = Literal["need", "project"]

BASE = 10  # a place filled is worth something even without a skill to match
SKILL_REQUIRED = 40
SKILL_AFFINE = 25  # one of the skills that suit the need's category or the project's kind
AVAILABILITY_MATCH = 20
AVAILABILITY_UNKNOWN = 10  # one side did not say when
LIVES_HERE = 15
MAX_SCORE = BASE + SKILL_REQUIRED + AVAILABILITY_MATCH + LIVES_HERE
SPREAD = 5
#: Every score and penalty is a multiple of this: the network counts in these units, which
#: keeps its costs (and the solver's work) that many times smaller.
UNIT = math.gcd(
    BASE, SKILL_REQUIRED, SKILL_AFFINE, AVAILABILITY_MATCH, AVAILABILITY_UNKNOWN, LIVES_HERE, SPREAD
)


class EngineError(RuntimeError):
    """The solver did not reach an optimum (a bug, or costs beyond its range)."""


@dataclass(frozen=True)
class Limits:
    """Load cap (负担上限): how many needs and projects one member may carry in all.

    Default 2 + 2: 双对接 asks one of each; a second of each lets willing members take up
    places nobody else can fill, while the spread penalty gives a place to a member's first
    pairing before anyone's second. Configurable (``pairings.limits_from``).
    """

    needs: int = 2
    projects: int = 2

    def of(self, kind: Kind) -> int:
        return self.needs if kind == "need" else self.projects


@dataclass(frozen=True)
class Candidate:
    """A member as the engine sees them; ``communities`` are the confirmed ones only."""

    id: Hashable
    communities: frozenset[str]
    skills: frozenset[str] = frozenset()
    availability: frozenset[str] = frozenset()
    residence: str | None = None
    leader: bool = False
    needs_held: int = 0  # active pairings already held, in any community
    projects_held: int = 0

    def held(self, kind: Kind) -> int:
        return self.needs_held if kind == "need" else self.projects_held

    @property
    def dual(self) -> bool:
        return self.needs_held > 0 and self.projects_held > 0


@dataclass(frozen=True)
class Slot:
    """A need or a project with ``places`` still open."""

    id: Hashable
    kind: Kind
    community: str
    title: str
    places: int
    required_skill: str | None = None
    affinity: frozenset[str] = frozenset()  # skills that suit the category / kind
    availability: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Match:
    """Why a member suits a slot, and how well."""

    score: int
    skill: str = ""
    availability: str = ""
    lives_here: bool = False


@dataclass(frozen=True)
class Assignment:
    member_id: Hashable
    slot: Slot
    match: Match

    def reason(self) -> dict[str, str]:
        """What a pairing records as its ``reason``."""
        return {
            "title": self.slot.title,
            "skill": self.match.skill,
            "availability": self.match.availability,
            "lives_here": "yes" if self.match.lives_here else "no",
        }


@dataclass(frozen=True)
class Outcome:
    assignments: list[Assignment]
    members: int
    dual_paired: int  # after the run, existing pairings included
    leaders: int
    leaders_dual_paired: int
    score: int  # Σ match score − Σ load penalty of the new pairings
    arcs: int = 0
    counts: dict[str, int] = field(default_factory=dict)


def penalty(k: int) -> int:
    """The load-spread cost of a member's k-th pairing of one kind (k ≥ 1)."""
    return SPREAD * (k - 1)


def score(member: Candidate, slot: Slot) -> int:
    """The match score of an allowed pairing (see :func:`match` for the parts)."""
    points = BASE
    if slot.required_skill:
        points += SKILL_REQUIRED
    elif member.skills & slot.affinity:
        points += SKILL_AFFINE
    if member.availability & slot.availability:
        points += AVAILABILITY_MATCH
    elif not member.availability or not slot.availability:
        points += AVAILABILITY_UNKNOWN
    return points + (LIVES_HERE if member.residence == slot.community else 0)


def match(member: Candidate, slot: Slot) -> Match | None:
    """How well ``member`` suits ``slot`` and why; None when the rules forbid the pairing."""
    if slot.community not in member.communities:
        return None
    if slot.required_skill and slot.required_skill not in member.skills:
        return None
    skill = slot.required_skill or min(member.skills & slot.affinity, default="")
    when = min(member.availability & slot.availability, default="")
    lives = member.residence == slot.community
    return Match(score(member, slot), skill, when, lives)


def edges(
    members: Sequence[Candidate],
    slots: Sequence[Slot],
    excluded: Collection[tuple[Hashable, Hashable]],
) -> Iterator[tuple[int, int, int]]:
    """Every allowed (member index, slot index, score), found through a per-community index."""
    open_: dict[str, list[int]] = defaultdict(list)
    by_skill: dict[tuple[str, str], list[int]] = defaultdict(list)
    for j, slot in enumerate(slots):
        if slot.places > 0:
            if slot.required_skill:
                by_skill[slot.community, slot.required_skill].append(j)
            else:
                open_[slot.community].append(j)
    blocked = set(excluded)
    for i, member in enumerate(members):
        for community in sorted(member.communities):
            found = list(open_.get(community, ()))
            for skill in sorted(member.skills):
                found += by_skill.get((community, skill), ())
            for j in found:  # in the member's community, with a skill they have
                if not blocked or (member.id, slots[j].id) not in blocked:
                    yield i, j, score(member, slots[j])


SOURCE, SINK = 0, 1


def components(
    members: Sequence[Candidate], slots: Sequence[Slot], allowed: Sequence[tuple[int, int, int]]
) -> list[tuple[list[int], list[int], list[tuple[int, int, int]]]]:
    """The unconnected parts of the allowed pairs: (member indices, slot indices, the pairs
    renumbered within the part), largest first. Communities joined by a member registered
    in both fall in one part (a pair lies in one of the member's communities and the slot's
    own); members and slots with no allowed pair belong to none."""
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for member in members:
        first, *rest = sorted(member.communities) or [""]
        for other in rest:
            a, b = root(first), root(other)
            if a != b:
                parent[a] = b
    grouped: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    for pair in allowed:
        grouped[root(slots[pair[1]].community)].append(pair)
    parts = []
    for pairs in grouped.values():
        people = sorted({i for i, _, _ in pairs})
        places = sorted({j for _, j, _ in pairs})
        local_i = {i: n for n, i in enumerate(people)}
        local_j = {j: n for n, j in enumerate(places)}
        parts.append((people, places, [(local_i[i], local_j[j], s) for i, j, s in pairs]))
    parts.sort(key=lambda part: -len(part[2]))
    return parts


def solve(
    members: Sequence[Candidate],
    slots: Sequence[Slot],
    limits: Limits = Limits(),
    excluded: Collection[tuple[Hashable, Hashable]] = (),
    on_component: Callable[[int, int], None] | None = None,
) -> Outcome:
    """The optimal new pairings (see the module docstring); existing ones are kept.

    Members pair only within communities where they are registered, so the allowed pairs
    often fall apart into unconnected parts (a district's communities, a city's
    districts). The objective is a sum over the parts and no rule ties two parts, so the
    lexicographic optimum of the whole is the union of the parts' optima: each part is
    solved on its own, with weights sized to it — which keeps a city's costs within the
    solver's range. ``on_component(done, total)`` hears each part solved."""
    parts = components(members, slots, list(edges(members, slots, excluded)))
    assignments: list[Assignment] = []
    arcs = 0
    for n, (people, places, pairs) in enumerate(parts, start=1):
        found, used = _solve_part(
            [members[i] for i in people], [slots[j] for j in places], limits, pairs
        )
        assignments += found
        arcs += used
        if on_component is not None:
            on_component(n, len(parts))
    return summarise(members, assignments, arcs)


def _solve_part(
    members: Sequence[Candidate],
    slots: Sequence[Slot],
    limits: Limits,
    allowed: Sequence[tuple[int, int, int]],
) -> tuple[list[Assignment], int]:
    """The optimal new pairings among ``members`` and ``slots`` over the ``allowed`` pairs
    (indices into them), and the arcs of the network solved. The network of the module
    docstring, built as arrays (a city's has millions of arcs)."""
    nm, ns = len(members), len(slots)
    pairs = np.asarray(allowed, dtype=np.int64).reshape(-1, 3)
    ei, ej, score = pairs[:, 0], pairs[:, 1], pairs[:, 2]
    is_need = np.fromiter((s.kind == "need" for s in slots), dtype=bool, count=ns)
    places = np.fromiter((s.places for s in slots), dtype=np.int64, count=ns)
    held_n = np.fromiter((m.needs_held for m in members), dtype=np.int64, count=nm)
    held_p = np.fromiter((m.projects_held for m in members), dtype=np.int64, count=nm)
    leader = np.fromiter((m.leader for m in members), dtype=bool, count=nm)
    need_pair = is_need[ej]
    room_n = np.maximum(
        0, np.minimum(limits.needs - held_n, np.bincount(ei[need_pair], minlength=nm))
    )
    room_p = np.maximum(
        0, np.minimum(limits.projects - held_p, np.bincount(ei[~need_pair], minlength=nm))
    )
    dual = (held_n > 0) & (held_p > 0)
    can_gain = ~dual & ((held_n > 0) | (room_n > 0)) & ((held_p > 0) | (room_p > 0))
    used = np.zeros(ns, dtype=bool)
    used[ej] = True
    most = min(int(places[used].sum()), int((room_n + room_p).sum()))
    w_member = most * ((MAX_SCORE + penalty(max(limits.needs, limits.projects))) // UNIT) + 1
    others = int((can_gain & ~leader).sum())
    w_leader = (others + 1) * w_member
    bonus = np.where(can_gain, -np.where(leader, w_leader, w_member), 0).astype(np.int64)

    # nodes: source, sink, the slots, then G and I of each member with room for a need,
    # then O and H of each member with room for a project
    has_n, has_p = room_n > 0, room_p > 0
    g = 2 + ns + 2 * (np.cumsum(has_n) - 1)
    split = g + 1
    gather = 2 + ns + 2 * int(has_n.sum()) + 2 * (np.cumsum(has_p) - 1)
    hand = gather + 1
    tails: list[np.ndarray] = []
    heads: list[np.ndarray] = []
    caps: list[np.ndarray] = []
    costs: list[np.ndarray] = []

    def arcs(tail: Any, head: Any, cap: Any, cost: Any, where: np.ndarray) -> None:
        count = int(where.sum())
        for found, value in ((tails, tail), (heads, head), (caps, cap), (costs, cost)):
            array = np.asarray(value, dtype=np.int64)
            found.append(np.broadcast_to(array, where.shape)[where] if array.ndim else
                         np.full(count, int(array), dtype=np.int64))  # fmt: skip

    slot_node = 2 + np.arange(ns)
    arcs(SOURCE, slot_node, places, 0, used & is_need)
    arcs(slot_node, SINK, places, 0, used & ~is_need)
    first_arc = sum(len(t) for t in tails)
    take_n = need_pair & has_n[ei]
    take_p = ~need_pair & has_p[ei]
    arcs(2 + ej, g[ei], 1, -(score // UNIT), take_n)
    arcs(hand[ei], 2 + ej, 1, -(score // UNIT), take_p)
    for k in range(1, max(limits.needs, limits.projects) + 1):
        arcs(g, split, 1, SPREAD // UNIT * (held_n + k - 1), room_n >= k)
        arcs(gather, hand, 1, SPREAD // UNIT * (held_p + k - 1), room_p >= k)
    exit_bonus = np.where((held_p > 0) & (held_n == 0), bonus, 0)
    entry_bonus = np.where((held_n > 0) & (held_p == 0), bonus, 0)
    arcs(split, SINK, 1, exit_bonus, has_n)
    arcs(split, SINK, room_n - 1, 0, room_n > 1)
    arcs(SOURCE, gather, 1, entry_bonus, has_p)
    arcs(SOURCE, gather, room_p - 1, 0, room_p > 1)
    arcs(split, gather, 1, bonus, has_n & has_p & (held_n == 0) & (held_p == 0))
    supply = int(places[used & is_need].sum() + room_p.sum())
    arcs(SOURCE, SINK, supply, 0, np.ones(1, dtype=bool))

    chosen_i = np.concatenate([ei[take_n], ei[take_p]])
    chosen_j = np.concatenate([ej[take_n], ej[take_p]])
    wanted = np.arange(first_arc, first_arc + len(chosen_i), dtype=np.int32)
    flows = _run(
        np.concatenate(tails), np.concatenate(heads), np.concatenate(caps),
        np.concatenate(costs), supply, wanted,
    )  # fmt: skip
    assignments = []
    for n in np.flatnonzero(flows):
        i, j = int(chosen_i[n]), int(chosen_j[n])
        found = match(members[i], slots[j])
        assert found is not None
        assignments.append(Assignment(members[i].id, slots[j], found))
    return assignments, int(sum(len(t) for t in tails))


def _run(
    tails: np.ndarray,
    heads: np.ndarray,
    caps: np.ndarray,
    costs: np.ndarray,
    supply: int,
    wanted: np.ndarray,
) -> np.ndarray:
    keep = caps > 0
    solver = min_cost_flow.SimpleMinCostFlow()
    if keep.all():
        solver.add_arcs_with_capacity_and_unit_cost(
            tails.astype(np.int32), heads.astype(np.int32), caps, costs
        )
    else:  # arcs without capacity are left out; the wanted ones all have it
        index = np.cumsum(keep) - 1
        solver.add_arcs_with_capacity_and_unit_cost(
            tails[keep].astype(np.int32), heads[keep].astype(np.int32), caps[keep], costs[keep]
        )
        wanted = index[wanted].astype(np.int32)
    solver.set_node_supply(SOURCE, supply)
    solver.set_node_supply(SINK, -supply)
    status = solver.solve()
    if status != solver.OPTIMAL:
        raise EngineError(f"min-cost flow ended with status {status!r}")
    if not len(wanted):
        return np.zeros(0, dtype=np.int64)
    return np.asarray(solver.flows(wanted))


def summarise(
    members: Sequence[Candidate], assignments: list[Assignment], arcs: int = 0
) -> Outcome:
    """Coverage and score of ``assignments`` added to what ``members`` hold."""
    new: dict[tuple[Hashable, Kind], int] = defaultdict(int)
    for a in assignments:
        new[a.member_id, a.slot.kind] += 1
    score = sum(a.match.score for a in assignments)
    dual = leaders = leaders_dual = 0
    for m in members:
        got = {k: new.get((m.id, k), 0) for k in ("need", "project")}
        score -= sum(
            penalty(q)
            for k, q0 in (("need", m.needs_held), ("project", m.projects_held))
            for q in range(q0 + 1, q0 + got[k] + 1)
        )
        both = m.needs_held + got["need"] > 0 and m.projects_held + got["project"] > 0
        dual += both
        leaders += m.leader
        leaders_dual += both and m.leader
    kinds = {k: sum(1 for a in assignments if a.slot.kind == k) for k in ("need", "project")}
    return Outcome(assignments, len(members), dual, leaders, leaders_dual, score, arcs, kinds)
