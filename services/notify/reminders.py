"""The month's scheduled reminders: who gets each slot's message, and the sweep that sends it.

The calendar itself (jobs, slots, which are due) is :mod:`services.notify.calendar`. The
sweep (fired by the deployment's scheduler, or called directly by the demo) claims each due
slot by inserting its ``reminder_runs`` row (:func:`shared.schedule.insert_once`) in the
transaction that queues its messages, so two sweeps racing send each slot once; late,
superseded and skipped slots are decided by :func:`services.notify.calendar.due_slots`.
"""

from __future__ import annotations

import gc
import os
import socket
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, select

from services.notify.bulk import Outgoing, queue_messages
from services.notify.calendar import Calendar, Occurrence, calendar, due_slots
from services.notify.contacts import living_here, masked_names, residents
from services.notify.messages import Dispatch, Recipient
from services.notify.models import (
    Contact,
    FiveOnesReplica,
    ReminderRun,
    StaffContact,
    UnitDistrict,
)
from services.notify.progress import ITEMS, missing
from shared.db import UnitOfWork
from shared.pii import Sealer
from shared.runtime import Runtime
from shared.schedule import insert_once

__all__ = [
    "Calendar",
    "Occurrence",
    "SweepResult",
    "audience",
    "calendar",
    "done_slots",
    "due_slots",
    "slots_view",
    "sweep",
]


# --- who gets what ------------------------------------------------------------------------


def _params(occ: Occurrence, cal: Calendar) -> dict[str, Any]:
    """What every message of a slot says besides the recipient's own gaps."""
    if occ.job.kind == "kickoff":
        return {"when": cal.kickoff_at.isoformat(), "place": cal.kickoff_place}
    if occ.job.kind == "countdown":
        return {"days_left": (cal.end - occ.day).days}
    return {}


@contextmanager
def collector_waits() -> Iterator[None]:
    """A slot's tens of thousands of messages are acyclic objects: while they are made, the
    cyclic garbage collector (whose full passes walk the whole heap again and again as the
    objects pile up, five times the work itself for 40,000 messages) waits."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def audience(
    uow: UnitOfWork, occ: Occurrence, cal: Calendar, sealer: Sealer, served: list[str] | None
) -> list[Outgoing]:
    """The messages of one slot to the members living in ``served`` districts (None: all;
    :func:`services.notify.contacts.residents`): one query over the progress replica (and,
    for the unit lists, one over the organisers' contacts)."""
    with collector_waits():
        return _audience(uow, occ, cal, sealer, served)


def _audience(
    uow: UnitOfWork, occ: Occurrence, cal: Calendar, sealer: Sealer, served: list[str] | None
) -> list[Outgoing]:
    job = occ.job
    table = FiveOnesReplica
    query = (
        select(table.member_id, table.unit_code, *(getattr(table, k) for k in ITEMS))
        .join(Contact, Contact.member_id == table.member_id)  # only whom notify can reach
        .where(table.registered.is_(True), living_here(served))
    )
    if job.audience != "members":
        query = query.where(~and_(*(getattr(table, k).is_(True) for k in ITEMS)))
    if job.audience == "incomplete_non_cadres":
        query = query.where(table.is_leader_cadre.is_(False))
    elif job.audience == "incomplete_cadres":
        query = query.where(table.is_leader_cadre.is_(True))
    rows = uow.session.execute(query.order_by(table.member_id)).all()
    common = _params(occ, cal)
    if job.audience == "unit_organisers":
        return _unit_lists(uow, occ, rows, common, sealer)
    kind, slot, due_at = job.kind, occ.key, occ.due_at
    if job.audience == "members":
        return [
            Outgoing(Recipient("member", row[0]), kind, "five_ones", slot, common, due_at)
            for row in rows
        ]
    # What a member lacks takes one of 2⁵ shapes: each shape's params are made once and
    # shared by the messages that say it (they are only read: rendered, stored as JSON).
    said: dict[tuple[bool, ...], dict[str, Any]] = {}
    found = []
    for row in rows:
        flags = tuple(row[2:])
        params = said.get(flags)
        if params is None:
            lacks = [k for k, done in zip(ITEMS, flags, strict=True) if not done]
            params = said[flags] = {**common, "missing": lacks}
        found.append(Outgoing(Recipient("member", row[0]), kind, "five_ones", slot, params, due_at))
    return found


def _unit_lists(
    uow: UnitOfWork,
    occ: Occurrence,
    rows: Sequence[Row[Any]],
    common: dict[str, Any],
    sealer: Sealer,
) -> list[Outgoing]:
    """单位 — each unit organiser hears which of the unit's members are behind (names
    masked: 张*) and what each still lacks."""
    names = masked_names(uow, sealer, [r.member_id for r in rows if r.unit_code], default="*")
    behind: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row.unit_code:
            behind.setdefault(row.unit_code, []).append(
                {"name": names[row.member_id], "missing": missing(row)}
            )
    scopes = {f"unit:{code}": code for code in behind}
    organisers = uow.session.execute(
        select(StaffContact.id, StaffContact.scope)
        .where(
            StaffContact.role == "unit",
            StaffContact.state == "active",
            StaffContact.scope.in_(list(scopes)),
        )
        .order_by(StaffContact.scope, StaffContact.id)
    ).all()
    units = dict(
        uow.session.execute(
            select(UnitDistrict.code, UnitDistrict.name).where(UnitDistrict.code.in_(list(behind)))
        ).all()
    )
    return [
        Outgoing(
            recipient=Recipient.staff(staff_id),
            kind=occ.job.kind,
            subject=scopes[scope],
            slot=occ.key,
            params={
                **common,
                "unit": units.get(scopes[scope], scopes[scope]),
                "members": behind[scopes[scope]],
            },
            due_at=occ.due_at,
        )
        for staff_id, scope in organisers
    ]


# --- the sweep ------------------------------------------------------------------------------


@dataclass
class SweepResult:
    """What one sweep did: messages queued per job, and the slots it recorded skipped."""

    now: datetime
    queued: Counter[str] = field(default_factory=Counter)
    skipped: list[str] = field(default_factory=list)


def default_holder() -> str:
    return f"sweep:{socket.gethostname()}:{os.getpid()}"


def done_slots(uow: UnitOfWork) -> set[tuple[str, str]]:
    """The (job, slot) pairs claimed so far."""
    return set(uow.session.execute(select(ReminderRun.job, ReminderRun.slot)).tuples())


def sweep(
    rt: Runtime,
    now: datetime | None = None,
    holder: str | None = None,
    dispatch: Dispatch | None = None,
) -> SweepResult:
    """Queue every due reminder slot once; one transaction per slot. Safe to run anywhere.
    ``dispatch`` hands the queued messages to the send task after each slot's commit
    (None: the consume process's sweep hands them over)."""
    now = now or rt.clock.now()
    holder = holder or default_holder()
    cal = calendar(rt.settings)
    result = SweepResult(now=now)
    with rt.uow() as uow:
        done = done_slots(uow)
    for occ, outcome in due_slots(cal, now, done):
        with rt.uow() as uow:
            run = ReminderRun(
                job=occ.job.name,
                slot=occ.slot,
                due_at=occ.due_at,
                ran_at=now,
                outcome=outcome,
                messages=0,
                holder=holder,
            )
            if not insert_once(uow, run):  # the claim: another sweep ran this slot
                continue
            if outcome == "sent":
                messages = audience(uow, occ, cal, rt.sealer, residents(rt.settings))
                run.messages = queue_messages(uow, messages, dispatch)
                result.queued[occ.job.name] += run.messages
            else:
                result.skipped.append(occ.key)
            uow.commit()
    return result


def slots_view(uow: UnitOfWork, cal: Calendar) -> list[dict[str, Any]]:
    """The calendar with each slot's state (pending, sent, skipped, superseded)."""
    runs = {(r.job, r.slot): r for r in uow.session.scalars(select(ReminderRun))}
    view = []
    for occ in cal.occurrences():
        run = runs.get((occ.job.name, occ.slot))
        view.append(
            {
                "job": occ.job.name,
                "kind": occ.job.kind,
                "audience": occ.job.audience,
                "slot": occ.slot,
                "due_at": occ.due_at.isoformat(),
                "state": run.outcome if run else "pending",
                "messages": run.messages if run else None,
            }
        )
    return view
