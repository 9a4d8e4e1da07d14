"""What the rest of the reminder calendar will queue, and what its SMS will cost.

The forecast counts **the messages the schedule will queue**: it walks the same slots the
sweep will run from now to the campaign's end (the slots already due but not yet swept
included, as the next sweep will queue them), asks the same audience query who gets each,
the same channel choice how, and renders each SMS with the template the send path uses to
count its segments (70 characters, 67 when split). It is about the reminder schedule only:
triggered messages (pairings, wishes, …) are not in it, and the send-time rules do not
change its counts — quiet hours only defer a reminder, and a member's daily SMS cap may
merge some reminders into the next morning's digest (sent, not lost; then fewer, longer
SMS go out than forecast). The one assumption: **progress stays as it is now** — every
member still missing an item now is reminded of it in every remaining slot.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.notify.bulk import Outgoing, reaches
from services.notify.calendar import Calendar, Occurrence, calendar, due_slots
from services.notify.contacts import residents, sealed_names
from services.notify.messages import Reach, Recipient, choose_channel
from services.notify.models import Contact, StaffContact
from services.notify.reminders import audience, done_slots
from services.notify.rendering import render_sms
from shared.db import UnitOfWork
from shared.runtime import Runtime

ASSUMPTION = "assumes every member's five-ones progress stays as it is now"
#: What the counts are (printed with them).
RULE = "messages the schedule will queue; caps may merge some into digests"


@dataclass
class JobForecast:
    """One job's remaining slots: messages per channel and the SMS segments they make."""

    job: str
    kind: str
    slots: list[str] = field(default_factory=list)
    messages: Counter[str] = field(default_factory=Counter)  # sms | email | none
    sms_segments: int = 0

    def view(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "kind": self.kind,
            "slots": self.slots,
            "sms": self.messages["sms"],
            "email": self.messages["email"],
            "no_channel": self.messages["none"],
            "sms_segments": self.sms_segments,
        }


@dataclass
class Forecast:
    now: datetime
    campaign_end: str
    jobs: dict[str, JobForecast]

    @property
    def totals(self) -> dict[str, int]:
        return {
            "sms": sum(j.messages["sms"] for j in self.jobs.values()),
            "email": sum(j.messages["email"] for j in self.jobs.values()),
            "no_channel": sum(j.messages["none"] for j in self.jobs.values()),
            "sms_segments": sum(j.sms_segments for j in self.jobs.values()),
        }

    def view(self) -> dict[str, Any]:
        return {
            "now": self.now.isoformat(),
            "campaign_end": self.campaign_end,
            "counts": RULE,
            "assumption": ASSUMPTION,
            "jobs": [j.view() for j in self.jobs.values()],
            "totals": self.totals,
        }


def remaining(uow: UnitOfWork, cal: Calendar, now: datetime) -> list[Occurrence]:
    """The slots the sweeps will still send: due now and unclaimed, or due later."""
    done = done_slots(uow)
    soon = [occ for occ, what in due_slots(cal, now, done) if what == "sent"]
    later = [o for o in cal.occurrences() if o.due_at > now and (o.job.name, o.slot) not in done]
    return soon + later


class _Known:
    """What every slot's messages share, read once per recipient over the whole forecast
    (progress is assumed fixed, so the audiences repeat): how each can be reached, the name
    in each SMS (opened from the sealed contact), and each distinct SMS's segments."""

    def __init__(self, uow: UnitOfWork, rt: Runtime) -> None:
        self.uow, self.sealer = uow, rt.sealer
        self.reach: dict[Recipient, Reach] = {}
        self.names: dict[Recipient, str] = {}
        self.segments: dict[tuple[str, str, str], int] = {}

    def channels(self, messages: Sequence[Outgoing]) -> list[str | None]:
        """The channel each message would go by now (None: the recipient accepts none)."""
        new = {m.recipient for m in messages} - self.reach.keys()
        if new:
            self.reach.update(reaches(self.uow, new))
        return [choose_channel(m.kind, self.reach[m.recipient], m.channel) for m in messages]

    def open_names(self, recipients: Iterable[Recipient]) -> None:
        new = set(recipients) - self.names.keys()
        for key, kind in ((Contact.member_id, "member"), (StaffContact.id, "staff")):
            ids = {r.id for r in new if r.kind == kind}
            opened = sealed_names(self.uow, self.sealer, key, ids) if ids else {}
            self.names.update({r: opened.get(r.id, "") for r in new if r.kind == kind})

    def sms_segments(self, message: Outgoing) -> int:
        """The segments of the SMS as the send path renders it (the recipient's name in it)."""
        name = self.names.get(message.recipient, "")
        params = json.dumps(message.params, sort_keys=True, ensure_ascii=False)
        key = (message.kind, name, params)
        if key not in self.segments:
            rendered = render_sms(message.kind, {"name": name, **message.params})
            self.segments[key] = rendered.segments
        return self.segments[key]


def forecast(rt: Runtime, now: datetime | None = None) -> Forecast:
    """The remaining schedule from ``now`` (the clock) to the campaign's end."""
    now = now or rt.clock.now()
    cal = calendar(rt.settings)
    jobs = {j.name: JobForecast(j.name, j.kind) for j in cal.jobs}
    with rt.uow() as uow:
        known = _Known(uow, rt)
        for occ in remaining(uow, cal, now):
            job = jobs[occ.job.name]
            job.slots.append(occ.slot)
            messages = audience(uow, occ, cal, rt.sealer, residents(rt.settings))
            chosen = known.channels(messages)
            by_sms = [m for m, c in zip(messages, chosen, strict=True) if c == "sms"]
            known.open_names(m.recipient for m in by_sms)
            job.messages.update(c or "none" for c in chosen)
            job.sms_segments += sum(known.sms_segments(m) for m in by_sms)
    return Forecast(now, cal.end.isoformat(), jobs)
