"""The community's 双对接 report: who is not yet paired and why (no capacity, no matching
skill, not confirmed), and which needs and projects still have open places and why."""

from __future__ import annotations

from collections.abc import Collection, Hashable, Sequence
from typing import Any

from services.pairing import engine
from services.pairing.pairings import (
    Scope,
    campaign_day,
    candidate,
    held_by,
    members_in,
    offered,
    open_slots,
)
from shared.db import UnitOfWork


def community_report(uow: UnitOfWork, code: str, limits: engine.Limits) -> dict[str, Any]:
    """The community's 双对接 figures, its members without both pairings, and its needs and
    projects with open places, each with the reason."""
    scope = Scope("community", code)
    replicas = [
        r for r in members_in(uow.session, scope) if any(c["code"] == code for c in r.communities)
    ]
    held = held_by(uow.session, (r.id for r in replicas))
    members = {r.id: candidate(r, held) for r in replicas}
    here = [m for m in members.values() if code in m.communities]
    slots = open_slots(uow.session, scope, campaign_day(uow))
    excluded = offered(uow.session, scope)
    unpaired = []
    for m in sorted(members.values(), key=lambda m: (not m.leader, str(m.id))):
        missing: list[engine.Kind] = [k for k in ("need", "project") if not m.held(k)]
        if not missing:
            continue
        reasons = {
            k: why_unpaired(m, k, slots, excluded) if code in m.communities else "not_confirmed"
            for k in missing
        }
        unpaired.append(
            {
                "member_id": str(m.id),
                "is_leader_cadre": m.leader,
                "missing": missing,
                "reason": reasons[missing[0]],
                "reasons": reasons,
            }
        )
    left = [
        {
            "id": str(s.id),
            "kind": s.kind,
            "title": s.title,
            "open_places": s.places,
            "reason": why_uncovered(s, here, limits, excluded),
        }
        for s in slots
        if s.places > 0
    ]
    return {
        "community_code": code,
        "members": len(replicas),
        "confirmed": len(here),
        "dual_paired": sum(m.dual for m in here),
        "leaders": sum(m.leader for m in here),
        "leaders_dual_paired": sum(m.dual and m.leader for m in here),
        "unpaired_members": unpaired,
        "uncovered_needs": [s for s in left if s["kind"] == "need"],
        "unfilled_projects": [s for s in left if s["kind"] == "project"],
    }


def why_unpaired(
    member: engine.Candidate,
    kind: engine.Kind,
    slots: Sequence[engine.Slot],
    excluded: Collection[tuple[Hashable, Hashable]] = (),
) -> str:
    """Why a confirmed member holds no pairing of ``kind``: ``no_capacity`` (no open place
    in their communities), ``no_matching_skill``, or ``awaiting_run`` (a run would pair)."""
    if not member.communities:
        return "not_confirmed"
    open_ = [
        s
        for s in slots
        if s.kind == kind
        and s.places > 0
        and s.community in member.communities
        and (member.id, s.id) not in excluded
    ]
    if not open_:
        return "no_capacity"
    if all(engine.match(member, s) is None for s in open_):
        return "no_matching_skill"
    return "awaiting_run"


def why_uncovered(
    slot: engine.Slot,
    members: Sequence[engine.Candidate],
    limits: engine.Limits,
    excluded: Collection[tuple[Hashable, Hashable]] = (),
) -> str:
    """Why a need or project still has open places."""
    here = [m for m in members if slot.community in m.communities]
    if not here:
        return "no_confirmed_member"
    able = [m for m in here if engine.match(m, slot) and (m.id, slot.id) not in excluded]
    if not able:
        return "no_matching_skill"
    if all(m.held(slot.kind) >= limits.of(slot.kind) for m in able):
        return "members_at_load_cap"
    return "awaiting_run"
