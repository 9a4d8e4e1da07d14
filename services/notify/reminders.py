"""The month's scheduled reminders: a campaign-relative calendar, and the sweep that sends it.

The calendar is data: jobs whose days count from the campaign's first day (``start``) or
its last (``end``), at a local time in Asia/Shanghai. The default (``DEFAULT_SCHEDULE``)
follows issue 5; ``SERVICEMONTH_REMINDER_SCHEDULE`` may name a JSON file of the same shape
instead. Each occurrence of a job is a slot (its local date). Leading cadres get
``cadre_reminder`` *instead of* the weekly progress message (one message, not two, and in
words meant for them); in the last week they get the same countdown as everyone.

The sweep (fired by the deployment's scheduler, or called directly by the demo) claims each
due slot with :func:`shared.schedule.claim_slot` in the same transaction as the messages it
queues, so two sweeps racing send each slot once. A slot missed while nothing swept runs
late within a grace period (``SERVICEMONTH_REMINDER_GRACE_HOURS``, 24 h), unless a later
slot of the same kind is also due (then only the latest runs: "superseded"); older slots are
recorded as skipped.
"""

from __future__ import annotations

import json
import os
import re
import socket
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Row, and_, select

from services.notify.bulk import Outgoing, queue_messages
from services.notify.messages import Recipient
from services.notify.models import (
    Contact,
    FiveOnesReplica,
    ReminderRun,
    StaffContact,
    UnitDistrict,
)
from services.notify.progress import KINDS, missing
from shared.config import CAMPAIGN_TZ, ConfigError, Settings
from shared.db import UnitOfWork
from shared.events import SealedContact
from shared.pii import Sealer, mask_name
from shared.runtime import Runtime
from shared.schedule import claim_slot

AUDIENCES = (
    "members",  # every registered member
    "incomplete_members",  # those still lacking one of the five, leading cadres included
    "incomplete_non_cadres",  # the same, leading cadres left out (they get their own)
    "incomplete_cadres",  # leading cadres (县处级以上) still lacking one of the five
    "unit_organisers",  # one list per unit that has members behind
)

#: Issue 5's calendar. ``days`` or ``every``/``from``/``until`` give the local dates.
DEFAULT_SCHEDULE: list[dict[str, Any]] = [
    {"job": "kickoff_eve", "kind": "kickoff", "audience": "members",
     "at": "09:00", "days": ["start-1"]},
    {"job": "kickoff_day", "kind": "kickoff", "audience": "members",
     "at": "08:00", "days": ["start"]},
    {"job": "weekly_progress", "kind": "weekly_progress", "audience": "incomplete_non_cadres",
     "at": "09:00", "every": 7, "from": "start+7", "until": "end-8"},
    {"job": "cadre_reminder", "kind": "cadre_reminder", "audience": "incomplete_cadres",
     "at": "09:00", "every": 7, "from": "start+7", "until": "end-8"},
    {"job": "countdown", "kind": "countdown", "audience": "incomplete_members",
     "at": "09:00", "days": ["end-7", "end-3", "end-1"]},
    {"job": "unit_behind", "kind": "unit_behind", "audience": "unit_organisers",
     "at": "10:00", "every": 7, "from": "start+7", "until": "end-1"},
]  # fmt: skip

KICKOFF_AT = time(9, 0)
KICKOFF_PLACE = "所在社区党群服务中心"

_DAY = re.compile(r"^(start|end)(?:([+-])(\d{1,3}))?$")
_AT = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True)
class Job:
    """One line of the calendar: which message, to whom, at what local time, on which days."""

    name: str
    kind: str
    audience: str
    at: time
    days: tuple[date, ...]


@dataclass(frozen=True)
class Occurrence:
    """One slot of a job: the local date it is for, and when it is due (UTC)."""

    job: Job
    slot: str
    day: date
    due_at: datetime

    @property
    def key(self) -> str:
        return f"{self.job.name}:{self.slot}"


@dataclass(frozen=True)
class Calendar:
    """The reminder jobs of one campaign and the grace for late slots."""

    jobs: tuple[Job, ...]
    start: date
    end: date
    grace: timedelta
    kickoff_place: str = KICKOFF_PLACE

    @property
    def kickoff_at(self) -> datetime:
        """The kick-off ceremony: the first morning of the campaign (the notice: 9:00)."""
        return datetime.combine(self.start, KICKOFF_AT, CAMPAIGN_TZ)

    def occurrences(self) -> list[Occurrence]:
        """Every slot of the campaign, in the order they fall due."""
        found = [
            Occurrence(
                job,
                day.isoformat(),
                day,
                datetime.combine(day, job.at, CAMPAIGN_TZ).astimezone(UTC),
            )
            for job in self.jobs
            for day in job.days
        ]
        return sorted(found, key=lambda o: (o.due_at, o.job.name))


def _day(raw: Any, start: date, end: date, where: str) -> date:
    match = _DAY.match(str(raw).replace(" ", ""))
    if not match:
        raise ValueError(f"{where}: {raw!r} is not like 'start', 'start-1' or 'end-7'")
    anchor = start if match.group(1) == "start" else end
    offset = int(match.group(3) or 0) * (-1 if match.group(2) == "-" else 1)
    return anchor + timedelta(days=offset)


def _job(entry: Mapping[str, Any], start: date, end: date) -> Job:
    name = str(entry.get("job") or "")
    if not re.fullmatch(r"[a-z0-9_]{1,60}", name):
        raise ValueError(f"job {name!r}: a name of lower-case letters, digits and '_'")
    if entry.get("audience") not in AUDIENCES:
        raise ValueError(f"{name}: audience must be one of {', '.join(AUDIENCES)}")
    at = _AT.match(str(entry.get("at", "")))
    if not at:
        raise ValueError(f"{name}: 'at' must be a local time HH:MM")
    if "days" in entry:
        days = [_day(d, start, end, name) for d in entry["days"]]
    else:
        every = entry.get("every")
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"{name}: give 'days', or 'every' (whole days ≥ 1) with 'from'")
        first = _day(entry.get("from", "start"), start, end, name)
        last = _day(entry.get("until", "end"), start, end, name)
        days = [first + timedelta(days=n) for n in range(0, (last - first).days + 1, every)]
    return Job(
        name=name,
        kind=str(entry.get("kind") or name),
        audience=str(entry["audience"]),
        at=time(int(at.group(1)), int(at.group(2))),
        days=tuple(sorted(set(days))),
    )


def calendar(settings: Settings) -> Calendar:
    """The campaign's reminder calendar, from the default or the configured file."""
    path = settings.get("REMINDER_SCHEDULE", "notify")
    entries: Any = DEFAULT_SCHEDULE
    if path:
        try:
            entries = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"SERVICEMONTH_REMINDER_SCHEDULE: cannot read {path}: {exc}"
            ) from None
    raw_grace = settings.get("REMINDER_GRACE_HOURS", "notify") or "24"
    if not re.fullmatch(r"\d{1,4}(\.\d+)?", raw_grace):
        raise ConfigError(f"SERVICEMONTH_REMINDER_GRACE_HOURS: {raw_grace!r} is not hours ≥ 0")
    start, end = settings.campaign_start, settings.campaign_end
    try:
        if not isinstance(entries, list):
            raise ValueError("expected a JSON list of jobs")
        jobs = tuple(_job(entry, start, end) for entry in entries)
    except (ValueError, TypeError, AttributeError) as exc:
        raise ConfigError(f"SERVICEMONTH_REMINDER_SCHEDULE: {exc}") from None
    if len({j.name for j in jobs}) != len(jobs):
        raise ConfigError("SERVICEMONTH_REMINDER_SCHEDULE: a job name is used twice")
    place = settings.get("KICKOFF_PLACE", "notify") or KICKOFF_PLACE
    return Calendar(jobs, start, end, timedelta(hours=float(raw_grace)), place.strip()[:40])


# --- who gets what ------------------------------------------------------------------------


def _params(occ: Occurrence, cal: Calendar) -> dict[str, Any]:
    """What every message of a slot says besides the recipient's own gaps."""
    if occ.job.kind == "kickoff":
        return {"when": cal.kickoff_at.isoformat(), "place": cal.kickoff_place}
    if occ.job.kind == "countdown":
        return {"days_left": (cal.end - occ.day).days}
    return {}


def audience(uow: UnitOfWork, occ: Occurrence, cal: Calendar, sealer: Sealer) -> list[Outgoing]:
    """The messages of one slot: one query over the progress replica (and, for the unit
    lists, one over the organisers' contacts)."""
    job = occ.job
    table = FiveOnesReplica
    query = (
        select(table.member_id, table.unit_code, *(getattr(table, k) for k in KINDS))
        .join(Contact, Contact.member_id == table.member_id)  # only whom notify can reach
        .where(table.registered.is_(True))
    )
    if job.audience != "members":
        query = query.where(~and_(*(getattr(table, k).is_(True) for k in KINDS)))
    if job.audience == "incomplete_non_cadres":
        query = query.where(table.is_leader_cadre.is_(False))
    elif job.audience == "incomplete_cadres":
        query = query.where(table.is_leader_cadre.is_(True))
    rows = uow.session.execute(query.order_by(table.member_id)).all()
    common = _params(occ, cal)
    if job.audience == "unit_organisers":
        return _unit_lists(uow, occ, rows, common, sealer)
    return [
        Outgoing(
            recipient=Recipient.member(row.member_id),
            kind=job.kind,
            subject="five_ones",
            slot=occ.key,
            params=common if job.audience == "members" else {**common, "missing": missing(row)},
            due_at=occ.due_at,
        )
        for row in rows
    ]


def _unit_lists(
    uow: UnitOfWork,
    occ: Occurrence,
    rows: Sequence[Row[Any]],
    common: dict[str, Any],
    sealer: Sealer,
) -> list[Outgoing]:
    """单位 — each unit organiser hears which of the unit's members are behind (names
    masked: 张*) and what each still lacks."""
    names = masked_names(uow, sealer, [row.member_id for row in rows if row.unit_code])
    behind: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row.unit_code:
            behind.setdefault(row.unit_code, []).append(
                {"name": names.get(row.member_id, "*"), "missing": missing(row)}
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


def masked_names(
    uow: UnitOfWork, sealer: Sealer, member_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """Members' names as others may see them (张*), opened from their sealed contacts."""
    result = {}
    for start in range(0, len(member_ids), 5000):
        chunk = member_ids[start : start + 5000]
        for member_id, sealed in uow.session.execute(
            select(Contact.member_id, Contact.sealed).where(Contact.member_id.in_(chunk))
        ):
            name = sealer.open_json(sealed, SealedContact.CONTEXT).get("name") or ""
            result[member_id] = mask_name(name) if name else "*"
    return result


# --- the sweep ------------------------------------------------------------------------------


@dataclass
class SweepResult:
    """What one sweep did: messages queued per job, and slots skipped or lost to a rival."""

    now: datetime
    queued: Counter[str] = field(default_factory=Counter)
    slots_run: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    taken_elsewhere: list[str] = field(default_factory=list)


def default_holder() -> str:
    return f"sweep:{socket.gethostname()}:{os.getpid()}"


def done_slots(uow: UnitOfWork) -> set[tuple[str, str]]:
    table = uow.db.metadata.tables["schedule_slots"]
    return {(job, slot) for job, slot in uow.session.execute(select(table.c.job, table.c.slot))}


def due_slots(
    cal: Calendar, now: datetime, done: set[tuple[str, str]]
) -> list[tuple[Occurrence, str]]:
    """The unclaimed slots due at ``now``, each with what to do: run, skip or supersede."""
    due = [o for o in cal.occurrences() if o.due_at <= now and (o.job.name, o.slot) not in done]
    latest: dict[str, Occurrence] = {}
    for occ in due:
        if now - occ.due_at <= cal.grace:
            latest[occ.job.kind] = occ  # sorted by due time: the last one wins
    plan = []
    for occ in due:
        if now - occ.due_at > cal.grace:
            plan.append((occ, "skipped"))
        elif latest[occ.job.kind] is not occ:
            plan.append((occ, "superseded"))
        else:
            plan.append((occ, "sent"))
    return plan


def sweep(rt: Runtime, now: datetime | None = None, holder: str | None = None) -> SweepResult:
    """Queue every due reminder slot once; one transaction per slot. Safe to run anywhere."""
    now = now or rt.clock.now()
    holder = holder or default_holder()
    cal = calendar(rt.settings)
    result = SweepResult(now=now)
    with rt.uow() as uow:
        done = done_slots(uow)
    for occ, outcome in due_slots(cal, now, done):
        with rt.uow() as uow:
            if not claim_slot(uow, occ.job.name, occ.slot, holder):
                result.taken_elsewhere.append(occ.key)
                continue
            count = 0
            if outcome == "sent":
                count = queue_messages(uow, audience(uow, occ, cal, rt.sealer))
                result.queued[occ.job.name] += count
                result.slots_run.append(occ.key)
            else:
                result.skipped.append(occ.key)
            uow.session.add(
                ReminderRun(
                    job=occ.job.name,
                    slot=occ.slot,
                    due_at=occ.due_at,
                    ran_at=now,
                    outcome=outcome,
                    messages=count,
                    holder=holder,
                )
            )
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
