"""五个一 — the five ones: service records, their state machine, and each member's progress.

A member records a home visit (民情家访), a community activity, a policy talk (政策宣讲), a
micro-wish or a team; community staff verify it or return it with a reason:
submitted → verified | returned, verified is final. Only verified records count. A realized
wish claim and a confirmed team membership add a verified record of their own, once per
member (a partial unique index keeps that true even when two confirmations race).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.exc import IntegrityError

from services.pairing.access import covers
from services.pairing.models import MemberReplica, ServiceRecord
from shared.auth import Forbidden, Principal
from shared.config import CAMPAIGN_TZ, Settings
from shared.db import UnitOfWork
from shared.events import ActivityChanged, ActivityReturned, ActivitySubmitted, ActivityVerified
from shared.http import Conflict, Invalid, NotFound
from shared.pii import redact

KINDS = ("home_visit", "community_activity", "policy_talk", "wish", "team")
MAX_HOURS = 12.0
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "submitted": ("verified", "returned"),
    "verified": (),
    "returned": (),
}
EVENTS: dict[str, type[ActivityChanged]] = {
    "submitted": ActivitySubmitted,
    "verified": ActivityVerified,
    "returned": ActivityReturned,
}
Errors = list[dict[str, str]]


def confirmed_communities(member: MemberReplica) -> dict[str, str]:
    """The communities where the member's registration is confirmed (报到), code → role."""
    return {c["code"]: c["role"] for c in member.communities if c.get("state") == "confirmed"}


def registered_member(
    uow: UnitOfWork,
    member_id: uuid.UUID,
    community_code: str,
    *,
    field: str = "member_id",
    lock: bool = False,
) -> MemberReplica:
    """The member, refused with 422 unless confirmed in the community (naming ``field``)."""
    member = uow.session.get(MemberReplica, member_id, with_for_update=lock)
    if member is None:
        raise Invalid("unknown member", [{"field": "member_id", "message": "no such member"}])
    if community_code not in confirmed_communities(member):
        message = f"the member is not registered (confirmed) in community {community_code}"
        raise Invalid(message, [{"field": field, "message": message}])
    return member


def for_themself(principal: Principal, member_id: uuid.UUID) -> None:
    """A member acts only for themself: 403 otherwise. Checked before what they act on is
    looked up, so the refusal is the same whether it exists or not."""
    if principal.role == "member" and principal.code != str(member_id):
        raise Forbidden("a member may act only for themself")


def acts_for(principal: Principal, member_id: uuid.UUID, community_code: str) -> bool:
    """Whether staff act (True) or the member themself (False): members act for themselves
    (403 otherwise), staff within their scope (404 outside)."""
    if principal.role == "member":
        for_themself(principal, member_id)
        return False
    if not covers(principal, community_code):
        raise NotFound(f"no community {community_code}")
    return True


def find(uow: UnitOfWork, record_id: uuid.UUID, principal: Principal) -> ServiceRecord:
    """The record, or 404 unless it is the member's own or in the staff's scope."""
    row = uow.session.get(ServiceRecord, record_id)
    visible = row is not None and (
        principal.code == str(row.member_id)
        if principal.role == "member"
        else covers(principal, row.community_code)
    )
    if row is None or not visible:
        raise NotFound(f"no activity {record_id}")
    return row


def cas(uow: UnitOfWork, model: Any, row_id: uuid.UUID, current: str, **values: Any) -> bool:
    """Compare-and-set: change the row only if it is still in ``current``; True if it was.

    Every move of the pairing machines goes through this, so two requests racing on one
    row cannot both move it (the loser sees the new state and gets 409).
    """
    result = uow.session.execute(
        update(model).where(model.id == row_id, model.state == current).values(**values)
    )
    return cast(CursorResult[Any], result).rowcount == 1


@dataclass(frozen=True)
class RecordIn:
    """What a member reports: one service, on one day, with its hours or its times."""

    member_id: uuid.UUID
    kind: str
    community_code: str
    day: date
    hours: float | None = None
    start: time | None = None
    end: time | None = None
    note: str | None = None


def check_time(
    record: RecordIn, campaign: tuple[date, date], today: date
) -> tuple[float, datetime | None, datetime | None, Errors]:
    """Hours and times of a record, and what is wrong with them (docs/domain.md: end − start,
    positive, at most 12, inside the campaign window)."""
    errors: Errors = []
    if not campaign[0] <= record.day <= campaign[1]:
        errors.append(
            {"field": "date", "message": f"outside the campaign {campaign[0]}…{campaign[1]}"}
        )
    elif record.day > today:
        errors.append({"field": "date", "message": "is in the future"})
    hours = record.hours
    starts = ends = None
    if (record.start is None) != (record.end is None):
        missing = "end_time" if record.end is None else "start_time"
        errors.append({"field": missing, "message": "give both start_time and end_time"})
    elif record.start is not None and record.end is not None:
        starts = datetime.combine(record.day, record.start, CAMPAIGN_TZ)
        ends = datetime.combine(record.day, record.end, CAMPAIGN_TZ)
        if ends <= starts:
            errors.append({"field": "end_time", "message": "must be after start_time"})
        else:
            span = round((ends - starts).total_seconds() / 3600, 2)
            if hours is not None and abs(hours - span) > 0.01:
                errors.append({"field": "hours", "message": f"the times give {span} hours"})
            hours = span
    if hours is None:
        if not errors:
            errors.append({"field": "hours", "message": "required (or start_time and end_time)"})
    elif hours <= 0:
        errors.append({"field": "hours", "message": "must be positive"})
    elif hours > MAX_HOURS:
        errors.append({"field": "hours", "message": f"at most {MAX_HOURS:g} per record"})
    return hours or 0.0, starts, ends, errors


def submit(record: RecordIn, uow: UnitOfWork, settings: Settings) -> ServiceRecord:
    """Record one of the five ones (submitted), or refuse it with every bad field named."""
    if record.kind not in KINDS:
        raise Invalid("unknown kind", [{"field": "kind", "message": f"one of {', '.join(KINDS)}"}])
    # The lock serialises a member's own submissions, so two cannot overlap unseen.
    registered_member(
        uow, record.member_id, record.community_code, field="community_code", lock=True
    )
    today = uow.now().astimezone(CAMPAIGN_TZ).date()
    window = (settings.campaign_start, settings.campaign_end)
    hours, starts, ends, errors = check_time(record, window, today)
    if starts is not None and ends is not None and not errors:
        clash = uow.session.scalar(
            select(ServiceRecord.id).where(
                ServiceRecord.member_id == record.member_id,
                ServiceRecord.state != "returned",
                ServiceRecord.starts_at < ends,
                ServiceRecord.ends_at > starts,
            )
        )
        if clash is not None:
            errors.append({"field": "start_time", "message": "overlaps another record"})
    if errors:
        raise Invalid("the record has invalid fields", errors)
    row = ServiceRecord(
        member_id=record.member_id,
        kind=record.kind,
        community_code=record.community_code,
        day=record.day,
        starts_at=starts,
        ends_at=ends,
        hours=hours,
        note=redact(record.note) if record.note else record.note,
        source="member",
        state="submitted",
        created_at=uow.now(),
    )
    uow.session.add(row)
    uow.session.flush()
    _emit(row, uow)
    return row


def move(row: ServiceRecord, to: str, uow: UnitOfWork, reason: str | None = None) -> None:
    """Verify or return a submitted record; anything else is refused with 409."""
    allowed = TRANSITIONS[row.state]
    if to not in allowed:
        raise Conflict(
            f"a {row.state} record cannot become {to}", state=row.state, allowed=list(allowed)
        )
    if to == "returned" and not (reason and reason.strip()):
        raise Invalid("a return needs a reason", [{"field": "reason", "message": "required"}])
    reason = redact(reason.strip()) if reason else None  # typed text: no number in clear
    if not cas(
        uow, ServiceRecord, row.id, row.state, state=to, reason=reason, updated_at=uow.now()
    ):
        raise Conflict("the record changed meanwhile; read it again", state=row.state)
    _emit(row, uow)


def record_automatic(
    uow: UnitOfWork, member_id: uuid.UUID, kind: str, community_code: str, source_id: uuid.UUID
) -> None:
    """The wish or team item of the five ones, filled once per member (verified)."""
    exists = select(ServiceRecord.id).where(
        ServiceRecord.member_id == member_id, ServiceRecord.source == kind
    )
    if uow.session.scalar(exists) is not None:
        return
    now = uow.now()
    row = ServiceRecord(
        member_id=member_id,
        kind=kind,
        community_code=community_code,
        day=now.astimezone(CAMPAIGN_TZ).date(),
        hours=0.0,  # the item is done; hours count only actual, recorded service time
        source=kind,
        source_id=source_id,
        state="verified",
        created_at=now,
    )
    try:
        with uow.session.begin_nested():
            uow.session.add(row)
    except IntegrityError:
        return  # a concurrent confirmation filled it first
    _emit(row, uow)


def _emit(row: ServiceRecord, uow: UnitOfWork) -> None:
    uow.emit(
        EVENTS[row.state](
            record_id=row.id,
            member_id=row.member_id,
            kind=row.kind,
            community_code=row.community_code,
            day=row.day,
            hours=row.hours,
            state=row.state,
            reason=row.reason,
        ),
        district=row.community_code[:6],
    )


@dataclass
class Progress:
    """五个一完成情况 — which of the five a member has done (verified), and their hours."""

    done: set[str] = field(default_factory=set)
    hours: float = 0.0

    @property
    def complete(self) -> bool:
        return self.done >= set(KINDS)

    def view(self) -> dict[str, Any]:
        return {
            **{kind: kind in self.done for kind in KINDS},
            "complete": self.complete,
            "hours": round(self.hours, 2),
            "missing": [kind for kind in KINDS if kind not in self.done],
        }


def progress(uow: UnitOfWork, member_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Progress]:
    """Progress of many members from their verified records, a query per 5,000 members."""
    ids = list(member_ids)
    result = {member_id: Progress() for member_id in ids}
    for start in range(0, len(ids), 5000):
        rows = uow.session.execute(
            select(ServiceRecord.member_id, ServiceRecord.kind, func.sum(ServiceRecord.hours))
            .where(
                ServiceRecord.member_id.in_(ids[start : start + 5000]),
                ServiceRecord.state == "verified",
            )
            .group_by(ServiceRecord.member_id, ServiceRecord.kind)
        )
        for member_id, kind, hours in rows:
            result[member_id].done.add(kind)
            result[member_id].hours += float(hours or 0)
    return result
