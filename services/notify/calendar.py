"""The month's reminder calendar: campaign-relative jobs, their slots, and which are due.

The calendar is data: jobs whose days count from the campaign's first day (``start``) or
its last (``end``), at a local time in Asia/Shanghai. The default (``DEFAULT_SCHEDULE``)
is described in docs/domain.md; ``SERVICEMONTH_REMINDER_SCHEDULE`` may name a JSON file of
the same shape instead. Each occurrence of a job is a slot (its local date); its messages
carry the slot ``<job>:<date>``, so a job's name may be no longer than the slot columns
allow (:func:`max_job_name`). Leading cadres get ``cadre_reminder`` *instead of* the weekly
progress message (one message, not two, and in words meant for them); in the last week
they get the same countdown as everyone.

A slot missed while nothing swept runs late within a grace period
(``SERVICEMONTH_REMINDER_GRACE_HOURS``, 24 h), unless a later slot of the same kind is also
due (then only the latest runs: "superseded"); older slots are skipped (:func:`due_slots`).
The sweep that sends the slots is in :mod:`services.notify.reminders`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import String

from services.notify.models import Notification, ReminderRun
from services.notify.rendering import KINDS as MESSAGE_KINDS
from shared.config import CAMPAIGN_TZ, ConfigError, Settings

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
#: What a job's name is followed by in a message's slot: ``:YYYY-MM-DD``.
SLOT_DATE = len(":2016-06-26")

_DAY = re.compile(r"^(start|end)(?:([+-])(\d{1,3}))?$")
_AT = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def _length(column: Any) -> int:
    kind = column.type
    assert isinstance(kind, String) and kind.length, column
    return int(kind.length)


def max_job_name() -> int:
    """The longest job name the tables hold: ``<job>:<date>`` in ``notifications.slot``,
    the name alone in ``reminder_runs.job``."""
    return min(
        _length(Notification.__table__.c.slot) - SLOT_DATE,
        _length(ReminderRun.__table__.c.job),
    )


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
        """The slot its messages carry: ``<job>:<date>``."""
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


# --- loading ------------------------------------------------------------------------------


def _day(raw: Any, start: date, end: date, where: str) -> date:
    match = _DAY.match(str(raw).replace(" ", ""))
    if not match:
        raise ValueError(f"{where}: {raw!r} is not like 'start', 'start-1' or 'end-7'")
    anchor = start if match.group(1) == "start" else end
    offset = int(match.group(3) or 0) * (-1 if match.group(2) == "-" else 1)
    return anchor + timedelta(days=offset)


def _job(entry: Mapping[str, Any], start: date, end: date) -> Job:
    name = str(entry.get("job") or "")
    if not re.fullmatch(r"[a-z0-9_]+", name):
        raise ValueError(f"job {name!r}: a name of lower-case letters, digits and '_'")
    if len(name) > (limit := max_job_name()):
        raise ValueError(
            f"job {name!r}: {len(name)} characters, at most {limit} fit "
            f"(its slots '<job>:YYYY-MM-DD' are stored in columns of {limit + SLOT_DATE})"
        )
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
    kind = str(entry.get("kind") or name)
    if kind not in MESSAGE_KINDS:
        raise ValueError(f"{name}: kind {kind!r} has no templates (give 'kind')")
    return Job(
        name=name,
        kind=kind,
        audience=str(entry["audience"]),
        at=time(int(at.group(1)), int(at.group(2))),
        days=tuple(sorted(set(days))),
    )


def calendar(settings: Settings) -> Calendar:
    """The campaign's reminder calendar, from the default or the configured file."""
    path = settings.notify.reminder_schedule
    entries: Any = DEFAULT_SCHEDULE
    if path:
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"SERVICEMONTH_REMINDER_SCHEDULE: cannot read {path}: {exc}"
            ) from None
    start, end = settings.campaign_start, settings.campaign_end
    try:
        if not isinstance(entries, list):
            raise ValueError("expected a JSON list of jobs")
        jobs = tuple(_job(entry, start, end) for entry in entries)
    except (ValueError, TypeError, AttributeError) as exc:
        raise ConfigError(f"SERVICEMONTH_REMINDER_SCHEDULE: {exc}") from None
    if len({j.name for j in jobs}) != len(jobs):
        raise ConfigError("SERVICEMONTH_REMINDER_SCHEDULE: a job name is used twice")
    place = settings.notify.kickoff_place or KICKOFF_PLACE
    return Calendar(jobs, start, end, settings.notify.reminder_grace, place.strip()[:40])
