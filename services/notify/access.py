"""Who may see or change what in notify: a member's own preferences and messages, staff
in scope, the recipients of a correlation id a caller may see, and the providers' webhooks
(their shared token)."""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Callable

from sqlalchemy import select

from services.notify.models import Contact, Notification, StaffContact
from shared.auth import Forbidden, Principal, Unauthorized
from shared.config import Settings
from shared.db import UnitOfWork
from shared.http import DomainError, NotFound

Keep = Callable[[list[Notification]], list[Notification]]


def member_visible(contact: Contact | None, principal: Principal, member_id: uuid.UUID) -> bool:
    """The member themself; staff whose scope covers the member's communities or unit;
    a member notify has no contact for, only the city's admin. Leaders see no member."""
    if principal.kind == "member":
        return principal.code == str(member_id)
    if principal.role == "leader" or contact is None:
        return principal.kind == "city" and principal.role == "admin"
    return principal.covers(
        districts={c[:6] for c in contact.communities},
        units={contact.unit_code} if contact.unit_code else set(),
        communities=set(contact.communities),
    )


def visible_member(uow: UnitOfWork, principal: Principal, member_id: uuid.UUID) -> Contact:
    """The member's contact, when ``principal`` may see it; NotFound otherwise."""
    contact = uow.session.get(Contact, member_id)
    if contact is None or not member_visible(contact, principal, member_id):
        raise NotFound(f"no member {member_id}")
    return contact


def own_or_operator(uow: UnitOfWork, principal: Principal, member_id: uuid.UUID) -> Contact:
    """The member's contact, when ``principal`` may change the member's channels: the
    member, or an admin or operator in scope."""
    contact = visible_member(uow, principal, member_id)
    if principal.role not in ("admin", "operator", "member"):
        raise Forbidden(f"a {principal.role} token may not change a member's channels")
    return contact


def recipients_in_scope(uow: UnitOfWork, principal: Principal) -> Keep:
    """Keeps the messages whose recipient ``principal`` may see: a member by their contact's
    communities and unit (as :func:`member_visible`), a staff contact by its district. A
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
                and member_visible(reach[n.member_id], principal, n.member_id)
            )
        ]

    return keep


# --- provider webhooks ------------------------------------------------------------------


WEBHOOK_KEY = "SERVICEMONTH_NOTIFY_WEBHOOK_TOKEN"


class WebhookNotConfigured(DomainError):
    status = 503
    title = "Provider webhooks are not configured"


def check_webhook(settings: Settings, token: str | None) -> None:
    """Webhooks carry no bearer token: the provider's callback URL carries
    SERVICEMONTH_NOTIFY_WEBHOOK_TOKEN as ``?token=``.

    The key is required on every deployment, the embedded default too: a callback opts
    numbers out and marks messages delivered, and an embedded install can be reachable
    from outside as well. Without it every callback answers 503 naming the key, rather
    than the service refusing to start: sending, preferences and history work without
    webhooks, and providers redeliver receipts that were refused with a 5xx once it is set.
    """
    secret = settings.notify.webhook_token
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
