"""After the runs: a member's pairings, staff overrides, and the community's pairing report —
who is not yet 双对接 and why (no capacity, no matching skill, not confirmed), and which
needs and projects still have open places and why."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Hashable, Sequence
from typing import Any

from sqlalchemy import select

from services.pairing import engine
from services.pairing.models import MemberReplica, Need, Pairing, Project
from services.pairing.needs import confirmed
from services.pairing.pairings import (
    Scope,
    campaign_day,
    candidate,
    event_for,
    held_by,
    lock,
    members_in,
    new_row,
    offered,
    open_slots,
    places,
)
from shared.auth import Principal
from shared.db import UnitOfWork
from shared.events import PairingMade
from shared.http import Conflict, Invalid, NotFound


def pairing_view(p: Pairing) -> dict[str, Any]:
    return {
        "id": str(p.id),
        "member_id": str(p.member_id),
        "kind": p.kind,
        "subject_id": str(p.need_id or p.project_id),
        "need_id": str(p.need_id) if p.need_id else None,
        "project_id": str(p.project_id) if p.project_id else None,
        "title": p.reason.get("title", ""),
        "community_code": p.community_code,
        "score": p.score,
        "reason": p.reason,
        "source": p.source,
        "state": p.state,
        "run_id": str(p.run_id) if p.run_id else None,
        "created_at": p.created_at.isoformat(),
        "updated_at": p.updated_at.isoformat() if p.updated_at else None,
    }


def member_pairings(uow: UnitOfWork, member_id: uuid.UUID, who: Principal) -> dict[str, Any]:
    """The member's pairings that ``who`` may see (staff: those of their community)."""
    replica = uow.session.get(MemberReplica, member_id)
    codes = {c["code"] for c in replica.communities} if replica else set()
    mine = str(member_id)
    if replica is None or not who.covers(
        districts={c[:6] for c in codes}, communities=codes, member=mine
    ):
        raise NotFound(f"no member {member_id}")
    query = select(Pairing).where(Pairing.member_id == member_id).order_by(Pairing.created_at)
    rows = [
        p
        for p in uow.session.scalars(query)
        if who.covers(districts={p.community_code[:6]}, communities={p.community_code}, member=mine)
    ]
    active = {p.kind for p in rows if p.state == "active"}
    return {
        "member_id": mine,
        "dual_paired": active == {"need", "project"},
        "pairings": [pairing_view(p) for p in rows],
    }


def pairing(uow: UnitOfWork, pairing_id: uuid.UUID, who: Principal) -> Pairing:
    found = uow.session.get(Pairing, pairing_id)
    if found is None or not who.covers(
        districts={found.community_code[:6]},
        communities={found.community_code},
        member=str(found.member_id),
    ):
        raise NotFound(f"no pairing {pairing_id}")
    return found


def subject(uow: UnitOfWork, kind: str, subject_id: uuid.UUID, who: Principal) -> Need | Project:
    found: Need | Project | None = (
        uow.session.get(Need, subject_id)
        if kind == "need"
        else uow.session.get(Project, subject_id)
    )
    if found is None or not who.covers(
        districts={found.community_code[:6]}, communities={found.community_code}
    ):
        raise NotFound(f"no {kind} {subject_id}")
    return found


def pair_by_staff(uow: UnitOfWork, member_id: uuid.UUID, slot: Need | Project) -> Pairing:
    """A manual pairing (source ``staff``): any skill and load, but the member must be
    confirmed in the community and the need or project must have an open place."""
    lock(uow)
    kind = "need" if isinstance(slot, Need) else "project"
    replica = uow.session.get(MemberReplica, member_id)
    if replica is None or slot.community_code not in confirmed(replica.communities):
        message = "not a member confirmed in this community"
        raise Invalid(
            "the member cannot be paired here", [{"field": "member_id", "message": message}]
        )
    column = Pairing.need_id if kind == "need" else Pairing.project_id
    query = select(Pairing.member_id).where(column == slot.id, Pairing.state == "active")
    active = list(uow.session.scalars(query))
    if member_id in active:
        raise Conflict(f"the member is already paired with this {kind}")
    if len(active) >= places(slot):
        raise Conflict(f"the {kind} has no open place", places=places(slot))
    reason = {"title": slot.title, "source": "staff"}
    row = new_row(uow, member_id, kind, slot.id, slot.community_code, reason)
    made = Pairing(**row)
    uow.session.add(made)
    uow.session.flush()
    uow.emit(event_for(PairingMade, row), district=slot.community_code[:6])
    return made


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
