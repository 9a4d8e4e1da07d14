"""双对接 runs — the engine over a scope; ending pairings; following registration's events.

A run reads the open places, the members confirmed in the scope and the pairings they hold,
asks :mod:`services.pairing.engine` for the best additions, and inserts them with one
``pairing.made`` event each, in one transaction. Existing pairings are never touched, and a
pair once declined or removed by staff is never offered again. Runs are serialised (an
advisory lock on PostgreSQL; SQLite's writers queue anyway), so two runs never fill the same
place twice. Staff start runs (``POST /pairings/run``); a confirmed report-in pairs the
newcomer, and a publication pairs its community, at once (see :data:`AUTOMATIC`).
"""

from __future__ import annotations

import gc
import json
import logging
import os
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

from sqlalchemy import (
    ColumnElement,
    Text,
    cast,
    delete,
    func,
    insert,
    select,
    text,
    true,
    update,
)
from sqlalchemy.orm import InstrumentedAttribute, Session

from services.pairing import engine
from services.pairing.models import MemberReplica, Need, Pairing, PairingRun, Project
from services.pairing.needs import affinity, confirmed
from shared.auth import Principal
from shared.config import CAMPAIGN_TZ, Settings
from shared.db import UnitOfWork, outbox_table
from shared.events import (
    Envelope,
    Event,
    MemberWithdrawn,
    PairingChanged,
    PairingEnded,
    PairingMade,
    RegistrationChanged,
)
from shared.http import Conflict, DomainError, Invalid, NotFound
from shared.runtime import Runtime
from shared.workers import send_task

log = logging.getLogger(__name__)
RUN_LOCK = 410_300_2016  # pg_advisory_xact_lock key of pairing runs
_SCOPE = re.compile(r"^(city|district:\d{6}|community:\d{12})$")
Held = dict[tuple[uuid.UUID, str], int]


@dataclass(frozen=True)
class Scope:
    """Where a run pairs: ``community:CODE``, ``district:CODE`` or ``city``."""

    kind: str
    code: str = ""

    @classmethod
    def parse(cls, value: str) -> Scope:
        if not _SCOPE.match(value):
            message = "community:CODE (12 digits), district:CODE (6 digits) or city"
            raise Invalid("bad scope", [{"field": "scope", "message": message}])
        kind, _, code = value.partition(":")
        return cls(kind, code)

    def __str__(self) -> str:
        return f"{self.kind}:{self.code}" if self.code else self.kind

    def covers(self, community: str) -> bool:
        return self.kind == "city" or community.startswith(self.code)

    def where(self, column: InstrumentedAttribute[str]) -> ColumnElement[bool]:
        if self.kind == "community":
            return column == self.code
        return column.like(f"{self.code}%") if self.code else true()

    def allows(self, principal: Principal) -> bool:
        if self.kind == "city":
            return principal.kind == "city"
        return principal.covers(districts={self.code[:6]}, communities={self.code})


#: Automatic runs (a confirmation, a publication) bring members up to 双对接 — one need and
#: one project — and no further, so the first to arrive do not take the places that later
#: arrivals need; a run that staff start fills the rest up to the configured load cap.
AUTOMATIC = engine.Limits(needs=1, projects=1)


def limits_from(settings: Settings) -> engine.Limits:
    """The load cap: ``SERVICEMONTH_PAIRING_MAX_NEEDS_PER_MEMBER`` and
    ``SERVICEMONTH_PAIRING_MAX_PROJECTS_PER_MEMBER`` (or without ``PAIRING_``), 2 each."""
    own = settings.pairing
    return engine.Limits(own.max_needs_per_member, own.max_projects_per_member)


def campaign_day(uow: UnitOfWork) -> date:
    return uow.now().astimezone(CAMPAIGN_TZ).date()


def lock(uow: UnitOfWork) -> None:
    if uow.session.get_bind().dialect.name == "postgresql":
        uow.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": RUN_LOCK})


# --- loading what the engine needs -------------------------------------------------------


class Replica(Protocol):
    """What a run reads of a member: a :class:`MemberReplica`, or a row of its columns."""

    id: uuid.UUID
    communities: list[dict[str, str]]
    skills: list[str]
    availability: list[str]
    is_leader_cadre: bool


def members_in(session: Session, scope: Scope) -> list[Replica]:
    """Replicas registered in the scope (a text prefilter on the JSON, then exact), as rows
    of the columns a run reads (no ORM objects: a city has 200,000)."""
    m = MemberReplica
    query = select(m.id, m.communities, m.skills, m.availability, m.is_leader_cadre)
    if scope.kind != "city":
        needle = f'%"{scope.code}"%' if scope.kind == "community" else f'%"{scope.code}%'
        query = query.where(cast(MemberReplica.communities, Text).like(needle))
    return [
        r
        for r in session.execute(query)
        if scope.kind == "city" or any(scope.covers(c["code"]) for c in r.communities)
    ]


HELD_BY_ALL = 5000  # members beyond which every active pairing is read in one query


def held_by(session: Session, member_ids: Iterable[uuid.UUID]) -> Held:
    """Active pairings per (member, kind), in every community."""
    ids, held = list(member_ids), defaultdict[tuple[uuid.UUID, str], int](int)
    counted = func.count().label("n")
    query = select(Pairing.member_id, Pairing.kind, counted).where(Pairing.state == "active")
    query = query.group_by(Pairing.member_id, Pairing.kind)
    if len(ids) > HELD_BY_ALL:  # a district or the city: one pass over the active ones
        wanted = set(ids)
        for member_id, kind, n in session.execute(query).tuples():
            if member_id in wanted:
                held[member_id, kind] = n
        return held
    for start in range(0, len(ids), 1000):
        part = query.where(Pairing.member_id.in_(ids[start : start + 1000]))
        for member_id, kind, n in session.execute(part).tuples():
            held[member_id, kind] = n
    return held


def candidate(replica: Replica, held: Held) -> engine.Candidate:
    residence = next((c["code"] for c in replica.communities if c["role"] == "residence"), None)
    return engine.Candidate(
        id=replica.id,
        communities=confirmed(replica.communities),
        skills=frozenset(replica.skills or ()),
        availability=frozenset(replica.availability or ()),
        residence=residence,
        leader=replica.is_leader_cadre,
        needs_held=held.get((replica.id, "need"), 0),
        projects_held=held.get((replica.id, "project"), 0),
    )


def open_slots(session: Session, scope: Scope, today: date) -> list[engine.Slot]:
    """Open needs (window not over) and projects in the scope, with the places left."""
    taken: dict[uuid.UUID | None, int] = defaultdict(int)
    query = select(Pairing.need_id, Pairing.project_id).where(
        Pairing.state == "active", scope.where(Pairing.community_code)
    )
    for need_id, project_id in session.execute(query).tuples():
        taken[need_id or project_id] += 1
    current = (Need.window_end.is_(None)) | (Need.window_end >= today)
    needs = select(Need).where(scope.where(Need.community_code), Need.state == "open", current)
    projects = select(Project).where(scope.where(Project.community_code), Project.state == "open")
    found: list[Need | Project] = [*session.scalars(needs), *session.scalars(projects)]
    return [
        engine.Slot(
            id=s.id,
            kind="need" if isinstance(s, Need) else "project",
            community=s.community_code,
            title=s.title,
            places=max(0, places(s) - taken[s.id]),
            required_skill=s.required_skill,
            affinity=affinity(s.category if isinstance(s, Need) else s.kind),
            availability=frozenset(s.availability or ()),
        )
        for s in found
    ]


def places(slot: Need | Project) -> int:
    return slot.volunteers_needed if isinstance(slot, Need) else slot.capacity


def offered(
    session: Session, scope: Scope, member_id: uuid.UUID | None = None
) -> set[tuple[uuid.UUID, uuid.UUID]]:
    """Pairs held, declined or removed in the scope: never offered (again)."""
    query = select(Pairing.member_id, Pairing.need_id, Pairing.project_id).where(
        scope.where(Pairing.community_code)
    )
    if member_id is not None:
        query = query.where(Pairing.member_id == member_id)
    found = set()
    for member_id, need_id, project_id in session.execute(query).tuples():
        subject_id = need_id or project_id
        if subject_id is not None:
            found.add((member_id, subject_id))
    return found


# --- runs ------------------------------------------------------------------------------------


#: (phase, counts known so far) → recorded where the run's caller can follow it.
Progress = Callable[[str, dict[str, int]], None]


def _silent(phase: str, counts: dict[str, int]) -> None:
    """Automatic runs tell nobody how far they got."""


@contextmanager
def collector_waits() -> Iterator[None]:
    """A run makes hundreds of thousands of acyclic objects (candidates, allowed pairs,
    rows): meanwhile the cyclic garbage collector, whose full passes would walk the growing
    heap again and again, waits."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def run(
    uow: UnitOfWork,
    scope: Scope,
    limits: engine.Limits,
    only: MemberReplica | None = None,
    run_id: uuid.UUID | None = None,
    progress: Progress = _silent,
) -> dict[str, Any]:
    """Pair the members confirmed in ``scope`` (or ``only`` that one) with its open places;
    only adds. ``progress`` hears each phase (loading, solving, writing) with its counts."""
    with collector_waits():
        return _run(uow, scope, limits, only, run_id, progress)


def _run(
    uow: UnitOfWork,
    scope: Scope,
    limits: engine.Limits,
    only: MemberReplica | None,
    run_id: uuid.UUID | None,
    progress: Progress,
) -> dict[str, Any]:
    lock(uow)
    run_id = run_id or uuid.uuid4()
    progress("loading", {})
    slots = open_slots(uow.session, scope, campaign_day(uow))
    summary: dict[str, Any] = {"run_id": str(run_id), "scope": str(scope), "created": 0}
    summary |= {"needs": sum(s.kind == "need" for s in slots), "projects": 0, "members": 0}
    summary["projects"] = len(slots) - summary["needs"]
    if not any(s.places for s in slots):
        return summary  # nothing to fill: skip loading members
    progress("loading", {"needs": summary["needs"], "projects": summary["projects"]})
    replicas: list[Replica] = [only] if only else members_in(uow.session, scope)
    held = held_by(uow.session, (r.id for r in replicas))
    members = [candidate(r, held) for r in replicas]
    members = [m for m in members if any(scope.covers(c) for c in m.communities)]
    excluded = offered(uow.session, scope, only.id if only else None)
    counts = {"needs": summary["needs"], "projects": summary["projects"], "members": len(members)}
    progress("solving", counts)

    def solved(done: int, total: int) -> None:
        progress("solving", counts | {"components": total, "components_solved": done})

    outcome = engine.solve(members, slots, limits, excluded, on_component=solved)
    progress("writing", counts | {"created": len(outcome.assignments)})
    now, ids = uow.now(), new_ids(len(outcome.assignments))
    rows: list[dict[str, Any]] = [
        {
            "id": pairing_id,
            "member_id": a.member_id,
            "kind": a.slot.kind,
            "need_id": a.slot.id if a.slot.kind == "need" else None,
            "project_id": a.slot.id if a.slot.kind == "project" else None,
            "community_code": a.slot.community,
            "score": a.match.score,
            "reason": a.reason(),
            "source": "engine",
            "state": "active",
            "run_id": run_id,
            "created_at": now,
        }
        for a, pairing_id in zip(outcome.assignments, ids, strict=True)
    ]
    events: list[tuple[Event, str]] = [
        (event_for(PairingMade, r), r["community_code"][:6]) for r in rows
    ]
    if rows:
        insert_pairings(uow, rows)
        uow.emit_many(events)
    return summary | {
        "members": outcome.members,
        "leaders": outcome.leaders,
        "created": len(rows),
        "needs_paired": outcome.counts["need"],
        "projects_paired": outcome.counts["project"],
        "dual_paired": outcome.dual_paired,
        "leaders_dual_paired": outcome.leaders_dual_paired,
        "score": outcome.score,
    }


PAIRING_COLUMNS = (
    "id", "member_id", "kind", "need_id", "project_id", "community_code", "score", "reason",
    "source", "state", "run_id", "created_at",
)  # fmt: skip


def insert_pairings(uow: UnitOfWork, rows: list[dict[str, Any]]) -> None:
    """New pairings in the run's transaction: by COPY on PostgreSQL (a city's run writes
    hundreds of thousands), else one executemany per shape of NULLs."""
    connection = uow.session.connection()
    if connection.dialect.name != "postgresql":
        rows.sort(key=lambda r: r["kind"])  # rows alike in their NULLs: one executemany each
        uow.session.execute(insert(Pairing), rows)
        return
    driver = connection.connection.driver_connection
    assert driver is not None
    statement = f"COPY pairings ({', '.join(PAIRING_COLUMNS)}) FROM STDIN"
    with driver.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(
                [json.dumps(row["reason"]) if c == "reason" else row[c] for c in PAIRING_COLUMNS]
            )


def new_ids(count: int) -> list[uuid.UUID]:
    """``count`` random (version 4) UUIDs from one read of the system's randomness."""
    noise = os.urandom(16 * count)
    return [uuid.UUID(bytes=noise[16 * n : 16 * n + 16], version=4) for n in range(count)]


def new_row(
    uow: UnitOfWork,
    member_id: Any,
    kind: str,
    subject_id: Any,
    community: str,
    reason: dict[str, str],
    run_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    """A new active pairing as table values (engine ids are the replicas' UUIDs)."""
    return {
        "id": uuid.uuid4(),
        "member_id": member_id,
        "kind": kind,
        "need_id": subject_id if kind == "need" else None,
        "project_id": subject_id if kind == "project" else None,
        "community_code": community,
        "score": 0,
        "reason": reason,
        "source": "engine" if run_id else "staff",
        "state": "active",
        "run_id": run_id,
        "created_at": uow.now(),
    }


def event_for(cls: type[PairingChanged], row: dict[str, Any]) -> PairingChanged:
    """The event of a pairing row (its values are the table's, already of the right types)."""
    return cls.model_construct(
        pairing_id=row["id"],
        member_id=row["member_id"],
        kind=row["kind"],
        community_code=row["community_code"],
        subject_id=row["need_id"] or row["project_id"],
        title=row["reason"].get("title", ""),
        state=row["state"],
        reason=row["reason"],
    )


# --- runs as jobs (POST /pairings/run) ------------------------------------------------------

RUN_TASK = "pairing.run"
PROGRESS_EVERY = 1.0  # seconds between two progress writes within a phase


def queue_run(rt: Runtime, scope: Scope, who: Principal) -> PairingRun:
    """Record a run ``queued`` and send it to pairing's worker once committed; a broker
    that cannot take it fails the run now (503) rather than leave it queued for ever."""
    with rt.uow() as uow:
        job = PairingRun(
            id=uuid.uuid4(),
            scope=str(scope),
            state="queued",
            phase="queued",
            progress={},
            requested_by=(who.scope or who.role)[:80],
            attempts=0,
            created_at=uow.now(),
        )
        uow.session.add(job)
        uow.commit()
    try:
        send_task(rt.service, rt.settings, RUN_TASK, str(job.id))
    except Exception:
        log.exception("pairing run %s could not be queued", job.id)
        _finish(rt, job.id, "failed", error=NOT_QUEUED)
        raise Unavailable("the pairing run could not be queued; start it again") from None
    return job


NOT_QUEUED = "the run could not be queued; start it again"


class Unavailable(DomainError):
    status = 503
    title = "Service unavailable"


def _finish(rt: Runtime, run_id: uuid.UUID, state: str, error: str | None = None) -> None:
    with rt.uow() as uow:
        uow.session.execute(
            update(PairingRun)
            .where(PairingRun.id == run_id)
            .values(state=state, phase=state, error=error, finished_at=uow.now())
        )
        uow.commit()


def _reporter(rt: Runtime, run_id: uuid.UUID) -> Progress:
    """Progress written in its own short transactions (PostgreSQL: the run's transaction
    holds only an advisory lock). On SQLite the run holds the database's one write lock,
    so its progress shows only as running, then done."""
    if rt.db.is_sqlite:
        return _silent
    last: dict[str, Any] = {"phase": "", "at": 0.0}

    def report(phase: str, counts: dict[str, int]) -> None:
        now = time.monotonic()
        if phase == last["phase"] and now - last["at"] < PROGRESS_EVERY:
            return
        last.update(phase=phase, at=now)
        with rt.uow() as uow:
            uow.session.execute(
                update(PairingRun)
                .where(PairingRun.id == run_id, PairingRun.state == "running")
                .values(phase=phase, progress=counts)
            )
            uow.commit()

    return report


def execute_run(rt: Runtime, run_id: uuid.UUID, limits: engine.Limits) -> str:
    """Do a queued run: mark it running, pair, and in the transaction that writes the
    pairings mark it done with its summary. A run done or failed does nothing again; one
    left running by a lost worker is done again (a run only adds). Answers the state."""
    with rt.uow() as uow:
        job = uow.session.get(PairingRun, run_id)
        if job is None:
            log.warning("pairing run %s is gone; nothing to do", run_id)
            return "missing"
        if job.state in ("done", "failed"):
            return job.state
        job.state, job.phase, job.attempts = "running", "loading", job.attempts + 1
        job.started_at = uow.now()
        scope = Scope.parse(job.scope)
        uow.commit()
    try:
        with rt.uow() as uow:
            summary = run(uow, scope, limits, run_id=run_id, progress=_reporter(rt, run_id))
            counts = {k: v for k, v in summary.items() if isinstance(v, int)}
            uow.session.execute(
                update(PairingRun)
                .where(PairingRun.id == run_id)
                .values(
                    state="done",
                    phase="done",
                    summary=summary,
                    progress=counts,
                    finished_at=uow.now(),
                )
            )
            uow.commit()
    except Exception as error:
        log.exception("pairing run %s failed", run_id)
        _finish(rt, run_id, "failed", error=f"{type(error).__name__}: {error}"[:500])
        return "failed"
    return "done"


def run_after_publishing(rt: Runtime, code: str) -> None:
    """Pair a community after staff published in it; a failure waits for the next run."""
    try:
        with rt.uow() as uow:
            run(uow, Scope("community", code), AUTOMATIC)
            uow.commit()
    except Exception:
        log.exception("pairing run after publishing in community %s failed", code)


# --- staff overrides -------------------------------------------------------------------------


def find(uow: UnitOfWork, pairing_id: uuid.UUID, who: Principal) -> Pairing:
    """The pairing, or 404 unless it is the caller's own or in their scope."""
    found = uow.session.get(Pairing, pairing_id)
    if found is None or not who.covers(
        districts={found.community_code[:6]},
        communities={found.community_code},
        member=str(found.member_id),
    ):
        raise NotFound(f"no pairing {pairing_id}")
    return found


def subject(uow: UnitOfWork, kind: str, subject_id: uuid.UUID, who: Principal) -> Need | Project:
    """The need or project to pair with, or 404 outside the caller's scope."""
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


# --- ending a pairing ----------------------------------------------------------------------


def end(uow: UnitOfWork, pairing: Pairing, state: str) -> None:
    """Declined by the member or removed by staff; refused unless active."""
    if pairing.state != "active":
        raise Conflict(
            f"a {pairing.state} pairing cannot become {state}", state=pairing.state, allowed=[]
        )
    pairing.state = state
    pairing.updated_at = uow.now()
    row = {c: getattr(pairing, c) for c in ("id", "member_id", "kind", "need_id", "project_id")}
    row |= {"community_code": pairing.community_code, "state": state, "reason": pairing.reason}
    uow.emit(event_for(PairingEnded, row), district=pairing.community_code[:6])


# --- events from registration ----------------------------------------------------------------


def pair_confirmed(event: RegistrationChanged, envelope: Envelope, uow: UnitOfWork) -> None:
    """A confirmed report-in (报到) pairs the newcomer in that community at once, in the same
    transaction; the others there were paired when they came or when places were published,
    so a confirmation costs one member's work, not the community's."""
    replica = uow.session.get(MemberReplica, event.member_id)
    if replica is not None and event.community_code in confirmed(replica.communities):
        run(uow, Scope("community", event.community_code), AUTOMATIC, only=replica)


def end_with_registration(event: RegistrationChanged, envelope: Envelope, uow: UnitOfWork) -> None:
    """A registration transferred out or cancelled ends the member's pairings there."""
    query = select(Pairing).where(
        Pairing.member_id == event.member_id,
        Pairing.community_code == event.community_code,
        Pairing.state == "active",
    )
    for pairing in uow.session.scalars(query):
        end(uow, pairing, "removed")


def erase_member(event: MemberWithdrawn, envelope: Envelope, uow: UnitOfWork) -> None:
    """A withdrawn member's pairings are erased with them, and so are the events that name
    them (every consumer erases the member on ``member.withdrawn`` too)."""
    uow.session.execute(delete(Pairing).where(Pairing.member_id == event.member_id))
    outbox = outbox_table(uow.db.metadata)
    uow.session.execute(delete(outbox).where(outbox.c.body.like(f"%{event.member_id}%")))
