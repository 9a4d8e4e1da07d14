"""Notify's read side: every query a ``GET`` route answers with, each returning the route's
response model (:mod:`services.notify.schemas`). Who may see what is
:mod:`services.notify.access`'s."""

from __future__ import annotations

import itertools
import uuid

from sqlalchemy import func, or_, select

from services.notify import access
from services.notify.access import Keep
from services.notify.calendar import calendar
from services.notify.messages import WAITING
from services.notify.models import Contact, Notification, NotificationEvent, StaffContact
from services.notify.reminders import slots_view
from services.notify.schemas import (
    MessageOut,
    PreferencesOut,
    ReminderSlotOut,
    StaffContactOut,
    SummaryOut,
)
from shared.auth import Forbidden, Principal
from shared.db import UnitOfWork, messaging_stats
from shared.http import Invalid, NotFound
from shared.runtime import Runtime

# --- staff contacts ----------------------------------------------------------------------------


def staff_view(contact: StaffContact) -> StaffContactOut:
    return StaffContactOut.model_validate(contact)


def staff_contacts(rt: Runtime, principal: Principal, scope: str | None) -> list[StaffContactOut]:
    """Staff contacts (masked), optionally of one scope, in the caller's district (the
    city's callers: all), at most 1,000."""
    with rt.read() as uow:
        query = select(StaffContact).order_by(StaffContact.scope, StaffContact.id).limit(1000)
        if scope is not None:
            query = query.where(StaffContact.scope == scope)
        if principal.kind != "city":
            query = query.where(StaffContact.district == principal.code)
        return [staff_view(c) for c in uow.session.scalars(query)]


# --- members: preferences and messages ---------------------------------------------------------


def preferences_of(member_id: uuid.UUID, contact: Contact) -> PreferencesOut:
    return PreferencesOut(
        member_id=str(member_id), sms=contact.sms_enabled, email=contact.email_enabled
    )


def preferences(rt: Runtime, principal: Principal, member_id: uuid.UUID) -> PreferencesOut:
    """The channels a member accepts (the member, or an admin or operator in scope)."""
    with rt.read() as uow:
        return preferences_of(member_id, access.own_or_operator(uow, principal, member_id))


def notifications(
    rt: Runtime,
    principal: Principal,
    *,
    member_id: uuid.UUID | None,
    correlation_id: uuid.UUID | None,
    limit: int,
) -> list[MessageOut]:
    """A member's messages (the member, or staff in scope), or those of one correlation id
    (admin and operators: only the recipients in their scope), each with its history."""
    if member_id is None and correlation_id is None:
        raise Invalid(
            "say whose messages",
            [{"field": "member_id", "message": "give member_id or correlation_id"}],
        )
    with rt.read() as uow:
        if member_id is not None:
            contact = uow.session.get(Contact, member_id)
            if not access.member_visible(contact, principal, member_id):
                raise NotFound(f"no member {member_id}")
        elif principal.role not in ("admin", "operator"):
            raise Forbidden("only admin and operator tokens may search by correlation id")
        # A member's own messages were checked above; a correlation id's are per recipient.
        in_scope = principal.kind == "city" or member_id is not None
        keep = None if in_scope else access.recipients_in_scope(uow, principal)
        return messages(
            uow, member_id=member_id, correlation_id=correlation_id, limit=limit, keep=keep
        )


def message_view(n: Notification, events: list[NotificationEvent]) -> MessageOut:
    """A message as people may see it: masked address, no parameters, its history."""
    return MessageOut.model_validate(
        {
            "id": str(n.id),
            "kind": n.kind,
            "channel": n.channel,
            "status": n.status,
            "to": n.to_masked,
            "member_id": str(n.member_id) if n.member_id else None,
            "urgent": n.urgent,
            "due_at": n.due_at.isoformat() if n.due_at else None,
            "provider": n.provider,
            "provider_ref": n.provider_ref,
            "attempts": n.attempts,
            "segments": n.segments,
            "merged_into": str(n.merged_into) if n.merged_into else None,
            "correlation_id": str(n.correlation_id) if n.correlation_id else None,
            "created_at": n.created_at.isoformat(),
            "sent_at": n.sent_at.isoformat() if n.sent_at else None,
            "history": [
                {
                    "at": e.at.isoformat(),
                    "status": e.status,
                    "provider": e.provider,
                    "reference": e.reference,
                    "error": e.error,
                    "detail": e.detail,
                }
                for e in events
            ],
        }
    )


#: Messages read per round when a scope filter drops some of them.
_PAGE = 500


def messages(
    uow: UnitOfWork,
    *,
    member_id: uuid.UUID | None = None,
    correlation_id: uuid.UUID | None = None,
    limit: int = 200,
    keep: Keep | None = None,
) -> list[MessageOut]:
    """A member's messages, or those one correlation id caused, oldest first.

    ``keep`` narrows each page read to what the caller may see (a district operator: its
    district's recipients); pages are read until ``limit`` messages are kept, so the
    limit counts visible messages, not the ones dropped.
    """
    query = select(Notification).order_by(Notification.created_at, Notification.id)
    if member_id is not None:
        query = query.where(Notification.member_id == member_id)
    if correlation_id is not None:
        query = query.where(Notification.correlation_id == correlation_id)
    if keep is None:
        found = list(uow.session.scalars(query.limit(limit)))
    else:
        found = []
        for start in itertools.count(0, _PAGE):
            page = list(uow.session.scalars(query.limit(_PAGE).offset(start)))
            found += keep(page)
            if len(page) < _PAGE or len(found) >= limit:
                break
        found = found[:limit]
    events: dict[uuid.UUID, list[NotificationEvent]] = {n.id: [] for n in found}
    if found:
        for e in uow.session.scalars(
            select(NotificationEvent)
            .where(NotificationEvent.notification_id.in_(list(events)))
            .order_by(NotificationEvent.id)
        ):
            events[e.notification_id].append(e)
    return [message_view(n, events[n.id]) for n in found]


def stats(uow: UnitOfWork) -> dict[str, int]:
    """The operator's counts (``GET /api/v1/ops/notify``)."""
    session = uow.session
    count = select(func.count()).select_from(Notification)
    by_status = dict(
        session.execute(
            select(Notification.status, func.count()).group_by(Notification.status)
        ).all()
    )
    return {
        "contacts": session.scalar(select(func.count()).select_from(Contact)) or 0,
        "staff_contacts": session.scalar(select(func.count()).select_from(StaffContact)) or 0,
        "messages": sum(int(n) for n in by_status.values()),
        "messages_sent": int(by_status.get("sent", 0)) + int(by_status.get("delivered", 0)),
        # due now and not yet handed over: the work the send workers have in front of them
        "messages_due": session.scalar(
            count.where(
                Notification.status.in_(WAITING),
                or_(Notification.due_at.is_(None), Notification.due_at <= uow.now()),
            )
        )
        or 0,
        **{f"messages_{status}": int(n) for status, n in sorted(by_status.items())},
        **messaging_stats(uow),
    }


def summary_of(uow: UnitOfWork) -> SummaryOut:
    """Messages per kind and status, and how many quiet hours deferred and caps merged."""
    session = uow.session
    per_kind: dict[str, dict[str, int]] = {}
    for kind, status, n in session.execute(
        select(Notification.kind, Notification.status, func.count()).group_by(
            Notification.kind, Notification.status
        )
    ):
        per_kind.setdefault(kind, {})[status] = int(n)
    deferred = session.scalar(
        select(func.count(func.distinct(NotificationEvent.notification_id))).where(
            NotificationEvent.status == "deferred",
            NotificationEvent.detail.like("quiet hours%"),
        )
    )
    merged = session.scalar(
        select(func.count()).select_from(Notification).where(Notification.merged_into.is_not(None))
    )
    segments = session.scalar(
        select(func.coalesce(func.sum(Notification.segments), 0)).where(
            Notification.channel == "sms", Notification.status.in_(("sent", "delivered"))
        )
    )
    by_channel = dict(
        session.execute(
            select(Notification.channel, func.count())
            .where(Notification.status.in_(("sent", "delivered")))
            .group_by(Notification.channel)
        ).all()
    )
    return SummaryOut(
        per_kind=dict(sorted(per_kind.items())),
        sent={k: int(v) for k, v in by_channel.items()},
        sms_segments=int(segments or 0),
        deferred_by_quiet_hours=int(deferred or 0),
        merged_by_caps=int(merged or 0),
    )


# --- operators ---------------------------------------------------------------------------------


def reminder_calendar(rt: Runtime) -> list[ReminderSlotOut]:
    """The campaign's reminder calendar, each slot with its due time and state."""
    with rt.read() as uow:
        return [
            ReminderSlotOut.model_validate(slot) for slot in slots_view(uow, calendar(rt.settings))
        ]


def summary(rt: Runtime) -> SummaryOut:
    """Messages per kind and status; deferred by quiet hours; merged by daily caps."""
    with rt.read() as uow:
        return summary_of(uow)
