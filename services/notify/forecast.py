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

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.notify.bulk import Outgoing, channels
from services.notify.calendar import Calendar, Occurrence, calendar, due_slots
from services.notify.contacts import sealed_names
from services.notify.models import Contact, StaffContact
from services.notify.reminders import audience, done_slots
from shared.db import UnitOfWork
from shared.runtime import Runtime

ASSUMPTION = "assumes every member's five-ones progress stays as it is now"
#: What the counts are (printed with them).
RULE = "messages the schedule will queue; caps may merge some into digests"

#: Counts the SMS segments of one message: (kind, the recipient's name, params) → segments.
Segments = Callable[[str, str, dict[str, Any]], int]


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


def names(uow: UnitOfWork, rt: Runtime, messages: Sequence[Outgoing]) -> dict[Any, str]:
    """Each recipient's name, opened from the sealed contact (it sits in the SMS text)."""
    result: dict[Any, str] = {}
    for key, kind in ((Contact.member_id, "member"), (StaffContact.id, "staff")):
        ids = {m.recipient.id for m in messages if m.recipient.kind == kind}
        names = sealed_names(uow, rt.sealer, key, ids)
        result.update({(kind, rid): name for rid, name in names.items()})
    return result


def forecast(rt: Runtime, segments: Segments, now: datetime | None = None) -> Forecast:
    """The remaining schedule from ``now`` (the clock) to the campaign's end."""
    now = now or rt.clock.now()
    cal = calendar(rt.settings)
    jobs = {j.name: JobForecast(j.name, j.kind) for j in cal.jobs}
    with rt.uow() as uow:
        for occ in remaining(uow, cal, now):
            job = jobs[occ.job.name]
            job.slots.append(occ.slot)
            messages = audience(uow, occ, cal, rt.sealer)
            chosen = channels(uow, messages)
            known = names(uow, rt, [m for m, c in zip(messages, chosen, strict=True) if c == "sms"])
            for message, channel in zip(messages, chosen, strict=True):
                job.messages[channel or "none"] += 1
                if channel == "sms":
                    name = known.get((message.recipient.kind, message.recipient.id), "")
                    job.sms_segments += segments(message.kind, name, message.params)
    return Forecast(now, cal.end.isoformat(), jobs)
