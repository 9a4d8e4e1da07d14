"""Notify's HTTP routes: staff contacts (read only), members' channel preferences, message
history, provider webhooks (delivery receipts, inbound replies) and the operator's sweep
and counts. Routes check the caller, hand a command to the bus or call a view, and answer
with a model of :mod:`services.notify.schemas`."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query

from services.notify import NAME, access, views
from services.notify.bootstrap import bus, runtime
from services.notify.commands import (
    HandleReplies,
    RecordReceipts,
    RunReminderSlots,
    SetPreferences,
    SweepDueMessages,
)
from services.notify.deps import Notify
from services.notify.schemas import (
    MessageOut,
    PreferencesIn,
    PreferencesOut,
    ReceiptsOut,
    ReminderSlotOut,
    RepliesOut,
    StaffContactOut,
    SummaryOut,
    SweepOut,
)
from shared.auth import Principal, add_status_route, requires
from shared.http import Invalid
from shared.messagebus import MessageBus
from shared.runtime import Runtime

router = APIRouter(prefix="/api/v1", tags=["notify"])
add_status_route(router, NAME, runtime, views.stats)
Rt = Annotated[Runtime, Depends(runtime)]
Bus = Annotated[MessageBus[Notify], Depends(bus)]
Operator = Annotated[Principal, Depends(requires(runtime, "admin", "operator"))]
Anyone = Annotated[Principal, Depends(requires(runtime))]


# --- staff contacts --------------------------------------------------------------------------


@router.get("/contacts")
def list_contacts(
    rt: Rt, principal: Operator, scope: Annotated[str | None, Query(max_length=60)] = None
) -> list[StaffContactOut]:
    """Staff contacts (masked), optionally of one scope: the replica of registration's staff
    accounts (registration's ``/api/v1/staff`` creates and disables them)."""
    return views.staff_contacts(rt, principal, scope)


# --- members: preferences and messages -----------------------------------------------------


@router.get("/members/{member_id}/preferences")
def read_preferences(member_id: uuid.UUID, rt: Rt, principal: Anyone) -> PreferencesOut:
    return views.preferences(rt, principal, member_id)


@router.put("/members/{member_id}/preferences")
def set_preferences(
    member_id: uuid.UUID, body: PreferencesIn, bus: Bus, principal: Anyone
) -> PreferencesOut:
    """The channels a member accepts; already queued messages are checked again at send."""
    return bus.handle(
        SetPreferences(principal=principal, member_id=member_id, sms=body.sms, email=body.email)
    )


@router.get("/notifications")
def list_notifications(
    rt: Rt,
    principal: Anyone,
    member_id: uuid.UUID | None = None,
    correlation_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[MessageOut]:
    """A member's messages (the member, or staff in scope), or those of one correlation id
    (admin and operators), each with its history; addresses masked."""
    return views.notifications(
        rt, principal, member_id=member_id, correlation_id=correlation_id, limit=limit
    )


# --- provider webhooks --------------------------------------------------------------------


#: Items one receipt or reply callback may carry (Aliyun pushes up to 100, Tencent fewer).
MAX_CALLBACK_ITEMS = 1000


def _reports(body: Any) -> list[dict[str, Any]]:
    """The callback's items, checked before any database work: objects, at most
    :data:`MAX_CALLBACK_ITEMS` of them (a provider batches far fewer)."""
    items = body if isinstance(body, list) else [body]
    if len(items) > MAX_CALLBACK_ITEMS:
        raise Invalid(
            "too many reports in one callback",
            [{"field": "body", "message": f"at most {MAX_CALLBACK_ITEMS:,} items"}],
        )
    if not all(isinstance(i, dict) for i in items):
        raise Invalid("not a list of reports", [{"field": "body", "message": "a list of objects"}])
    return items


@router.post("/providers/{name}/receipts")
def delivery_receipts(
    name: str,
    rt: Rt,
    bus: Bus,
    body: Annotated[Any, Body()],
    token: str | None = None,
) -> ReceiptsOut:
    """Delivery reports from a provider; idempotent, never moving a status backwards.
    Answers in the shape both providers accept as "received"."""
    access.check_webhook(rt.settings, token)
    counts = bus.handle(RecordReceipts(provider=name, items=_reports(body)))
    return ReceiptsOut(counts=counts)


@router.post("/providers/{name}/replies")
def inbound_replies(
    name: str, rt: Rt, bus: Bus, body: Annotated[Any, Body()], token: str | None = None
) -> RepliesOut:
    """Inbound SMS (Aliyun ``phone_number``/``content``, Tencent ``mobile``/``text``):
    "TD", "T" or "退订" turns SMS off for that number."""
    access.check_webhook(rt.settings, token)
    opted_out = bus.handle(HandleReplies(provider=name, items=_reports(body)))
    return RepliesOut(opted_out=opted_out)


# --- operators ------------------------------------------------------------------------------


@router.post("/ops/notify/sweep", tags=["ops"])
def sweep_now(bus: Bus, _who: Operator) -> SweepOut:
    """Run notify's sweeps now, as the scheduler and the consumer would: queue the reminder
    slots that are due (each slot once), then hand every due message to the send task."""
    swept = bus.handle(RunReminderSlots())
    dispatched = bus.handle(SweepDueMessages())
    return SweepOut(reminders=dict(swept.queued), skipped=swept.skipped, dispatched=dispatched)


@router.get("/reminders", tags=["ops"])
def reminder_calendar(rt: Rt, _who: Operator) -> list[ReminderSlotOut]:
    """The campaign's reminder calendar, each slot with its due time and state."""
    return views.reminder_calendar(rt)


@router.get("/ops/notify/summary", tags=["ops"])
def summary(rt: Rt, _who: Operator) -> SummaryOut:
    """Messages per kind and status; deferred by quiet hours; merged by daily caps."""
    return views.summary(rt)
