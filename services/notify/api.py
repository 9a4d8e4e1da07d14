"""Notify's HTTP routes: staff contacts (read only), members' channel preferences, message
history, provider webhooks (delivery receipts, inbound replies) and the operator's sweep
and counts."""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from services.notify import (
    NAME,
    consumers,
    contacts,
    handlers,
    history,
    receipts,
    reminders,
    runtime,
)
from services.notify.models import Contact, Notification, StaffContact
from shared.auth import Forbidden, Principal, Unauthorized, add_status_route, requires
from shared.db import UnitOfWork
from shared.http import DomainError, Invalid, NotFound
from shared.runtime import Runtime

router = APIRouter(prefix="/api/v1", tags=["notify"])
add_status_route(router, NAME, runtime, handlers.stats)
Rt = Annotated[Runtime, Depends(runtime)]
Operator = Annotated[Principal, Depends(requires(runtime, "admin", "operator"))]
Anyone = Annotated[Principal, Depends(requires(runtime))]

#: Inbound SMS that mean "stop sending me messages" (退订).
STOP_WORDS = frozenset({"TD", "T", "退订", "N", "STOP", "取消"})


# --- staff contacts --------------------------------------------------------------------------


@router.get("/contacts")
def list_contacts(
    rt: Rt, principal: Operator, scope: Annotated[str | None, Query(max_length=60)] = None
) -> list[dict[str, Any]]:
    """Staff contacts (masked), optionally of one scope: the replica of registration's staff
    accounts (registration's ``/api/v1/staff`` creates and disables them)."""
    with rt.read() as uow:
        query = select(StaffContact).order_by(StaffContact.scope, StaffContact.id).limit(1000)
        if scope is not None:
            query = query.where(StaffContact.scope == scope)
        if principal.kind != "city":
            query = query.where(StaffContact.district == principal.code)
        return [contacts.staff_view(c) for c in uow.session.scalars(query)]


# --- members: preferences and messages -----------------------------------------------------


class PreferencesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sms: bool | None = None
    email: bool | None = None


def _member_visible(contact: Contact | None, principal: Principal, member_id: uuid.UUID) -> bool:
    if principal.kind == "member":
        return principal.code == str(member_id)
    if principal.role == "leader" or contact is None:
        return principal.kind == "city" and principal.role == "admin"
    return principal.covers(
        districts={c[:6] for c in contact.communities},
        units={contact.unit_code} if contact.unit_code else set(),
        communities=set(contact.communities),
    )


def _own_or_operator(uow: UnitOfWork, principal: Principal, member_id: uuid.UUID) -> Contact:
    contact = uow.session.get(Contact, member_id)
    if contact is None or not _member_visible(contact, principal, member_id):
        raise NotFound(f"no member {member_id}")
    if principal.role not in ("admin", "operator", "member"):
        raise Forbidden(f"a {principal.role} token may not change a member's channels")
    return contact


def _preferences(member_id: uuid.UUID, contact: Contact) -> dict[str, Any]:
    return {"member_id": str(member_id), "sms": contact.sms_enabled, "email": contact.email_enabled}


@router.get("/members/{member_id}/preferences")
def read_preferences(member_id: uuid.UUID, rt: Rt, principal: Anyone) -> dict[str, Any]:
    with rt.read() as uow:
        return _preferences(member_id, _own_or_operator(uow, principal, member_id))


@router.put("/members/{member_id}/preferences")
def set_preferences(
    member_id: uuid.UUID, body: PreferencesIn, rt: Rt, principal: Anyone
) -> dict[str, Any]:
    """The channels a member accepts; already queued messages are checked again at send."""
    with rt.uow() as uow:
        contact = _own_or_operator(uow, principal, member_id)
        contacts.set_preferences(uow, contact, body.sms, body.email)
        uow.commit()
        return _preferences(member_id, contact)


@router.get("/notifications")
def list_notifications(
    rt: Rt,
    principal: Anyone,
    member_id: uuid.UUID | None = None,
    correlation_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    """A member's messages (the member, or staff in scope), or those of one correlation id
    (admin and operators), each with its history; addresses masked."""
    if member_id is None and correlation_id is None:
        raise Invalid(
            "say whose messages",
            [{"field": "member_id", "message": "give member_id or correlation_id"}],
        )
    with rt.read() as uow:
        if member_id is not None:
            contact = uow.session.get(Contact, member_id)
            if not _member_visible(contact, principal, member_id):
                raise NotFound(f"no member {member_id}")
        elif principal.role not in ("admin", "operator"):
            raise Forbidden("only admin and operator tokens may search by correlation id")
        # A member's own messages were checked above; a correlation id's are per recipient.
        in_scope = principal.kind == "city" or member_id is not None
        keep = None if in_scope else _recipients_in_scope(uow, principal)
        return history.messages(
            uow, member_id=member_id, correlation_id=correlation_id, limit=limit, keep=keep
        )


def _recipients_in_scope(
    uow: UnitOfWork, principal: Principal
) -> Callable[[list[Notification]], list[Notification]]:
    """Keeps the messages whose recipient ``principal`` may see: a member by their contact's
    communities and unit (as :func:`_member_visible`), a staff contact by its district. A
    correlation id is shared across districts (a reminder slot, a directory change), so a
    search by it must not reach past the caller's scope; report subscribers' messages
    (sealed recipients) and erased members are the city's only."""

    def keep(page: list[Notification]) -> list[Notification]:
        members = {n.member_id for n in page if n.member_id is not None}
        staff = {n.staff_id for n in page if n.staff_id is not None}
        found = select(Contact).where(Contact.member_id.in_(members))
        reach = {c.member_id: c for c in uow.session.scalars(found)} if members else {}
        ours = (
            set(
                uow.session.scalars(
                    select(StaffContact.id).where(
                        StaffContact.id.in_(staff), StaffContact.district == principal.code
                    )
                )
            )
            if staff and principal.kind == "district"
            else set()
        )
        return [
            n
            for n in page
            if (n.staff_id is not None and n.staff_id in ours)
            or (
                n.member_id is not None
                and n.member_id in reach
                and _member_visible(reach[n.member_id], principal, n.member_id)
            )
        ]

    return keep


# --- provider webhooks --------------------------------------------------------------------


WEBHOOK_KEY = "SERVICEMONTH_NOTIFY_WEBHOOK_TOKEN"
#: Items one receipt or reply callback may carry (Aliyun pushes up to 100, Tencent fewer).
MAX_CALLBACK_ITEMS = 1000


class WebhookNotConfigured(DomainError):
    status = 503
    title = "Provider webhooks are not configured"


def _check_webhook(rt: Runtime, token: str | None) -> None:
    """Webhooks carry no bearer token: the provider's callback URL carries
    SERVICEMONTH_NOTIFY_WEBHOOK_TOKEN as ``?token=``.

    The key is required on every deployment, the embedded default too: a callback opts
    numbers out and marks messages delivered, and an embedded install can be reachable
    from outside as well. Without it every callback answers 503 naming the key, rather
    than the service refusing to start: sending, preferences and history work without
    webhooks, and providers redeliver receipts that were refused with a 5xx once it is set.
    """
    secret = rt.settings.notify.webhook_token
    expected = secret.get_secret_value() if secret is not None else None
    if not expected:
        raise WebhookNotConfigured(
            f"set {WEBHOOK_KEY} and give the providers callback URLs with ?token=<it>; "
            "until then every receipt and reply is refused",
            key=WEBHOOK_KEY,
        )
    # Constant time: the comparison must not tell a caller how much of a guess was right.
    if not hmac.compare_digest(expected.encode(), (token or "").encode()):
        raise Unauthorized("bad webhook token")


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
    body: Annotated[Any, Body()],
    token: str | None = None,
) -> dict[str, Any]:
    """Delivery reports from a provider; idempotent, never moving a status backwards.
    Answers in the shape both providers accept as "received"."""
    _check_webhook(rt, token)
    items = _reports(body)
    counts: dict[str, int] = {}
    with rt.uow() as uow:
        for item in items:
            outcome = receipts.apply_receipt(
                uow, name, receipts.parse_receipt(item), rt.settings.district
            )
            counts[outcome] = counts.get(outcome, 0) + 1
        uow.commit()
    return {"code": 0, "msg": "成功", "result": 0, "errmsg": "OK", "counts": counts}


@router.post("/providers/{name}/replies")
def inbound_replies(
    name: str, rt: Rt, body: Annotated[Any, Body()], token: str | None = None
) -> dict[str, Any]:
    """Inbound SMS (Aliyun ``phone_number``/``content``, Tencent ``mobile``/``text``):
    "TD", "T" or "退订" turns SMS off for that number."""
    _check_webhook(rt, token)
    items = _reports(body)
    opted_out = 0
    with rt.uow() as uow:
        for item in items:
            phone = str(item.get("phone_number") or item.get("mobile") or "")
            text = str(item.get("content") or item.get("text") or "").strip().upper()
            if phone and text in STOP_WORDS:
                opted_out += contacts.opt_out_number(uow, rt.sealer, phone)
        uow.commit()
    return {"code": 0, "msg": "成功", "result": 0, "errmsg": "OK", "opted_out": opted_out}


# --- operators ------------------------------------------------------------------------------


@router.post("/ops/notify/sweep", tags=["ops"])
def sweep_now(rt: Rt, _who: Operator) -> dict[str, Any]:
    """Run notify's sweeps now, as the scheduler and the consumer would: queue the reminder
    slots that are due (each slot once), then hand every due message to the send task."""
    swept = reminders.sweep(rt)
    return {
        "reminders": dict(swept.queued),
        "skipped": swept.skipped,
        **consumers.periodic(rt),
    }


@router.get("/reminders", tags=["ops"])
def reminder_calendar(rt: Rt, _who: Operator) -> list[dict[str, Any]]:
    """The campaign's reminder calendar, each slot with its due time and state."""
    with rt.read() as uow:
        return reminders.slots_view(uow, reminders.calendar(rt.settings))


@router.get("/ops/notify/summary", tags=["ops"])
def summary(rt: Rt, _who: Operator) -> dict[str, Any]:
    """Messages per kind and status; deferred by quiet hours; merged by daily caps."""
    with rt.read() as uow:
        return history.summary(uow)
