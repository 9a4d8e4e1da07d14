"""Notify's use cases: keep members' contacts, queue messages, send each exactly once."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy import CursorResult, delete, func, select, update

from services.notify.channels import OutgoingSms, SmsChannel
from services.notify.models import CommunityName, Contact, Notification
from shared.auth import revoke_member_tokens
from shared.db import UnitOfWork, messaging_stats
from shared.events import (
    CommunityChanged,
    Envelope,
    MemberRegistered,
    MemberWithdrawn,
    SealedContact,
)
from shared.pii import Sealer

Dispatch = Callable[[uuid.UUID], None]
SEND_TASK = "notify.send"

templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    undefined=StrictUndefined,
    autoescape=False,  # SMS are plain text; HTML e-mail templates turn it on
    keep_trailing_newline=False,
)


def keep_contact(event: MemberRegistered, envelope: Envelope, uow: UnitOfWork) -> None:
    """Keep (or refresh) how to reach the member."""
    if event.contact is None:
        return
    contact = uow.session.get(Contact, event.member_id)
    if contact is None:
        contact = Contact(member_id=event.member_id)
        uow.session.add(contact)
    contact.sealed = event.contact.sealed
    contact.phone_masked = event.contact.phone_masked
    contact.communities = [c.community_code for c in event.communities]
    contact.updated_at = uow.now()


def record_community(event: CommunityChanged, envelope: Envelope, uow: UnitOfWork) -> None:
    current = uow.session.get(CommunityName, event.code)
    if current is None:
        uow.session.add(CommunityName(code=event.code, name=event.name))
    else:
        current.name = event.name


def community_names(uow: UnitOfWork, codes: list[str]) -> str:
    """``王城社区、长安路社区`` (the code where the name is not known yet)."""
    rows = uow.session.execute(
        select(CommunityName.code, CommunityName.name).where(CommunityName.code.in_(codes))
    )
    known = {code: name for code, name in rows}
    return "、".join(known.get(code, code) for code in codes)


def forget_member(event: MemberWithdrawn, envelope: Envelope, uow: UnitOfWork) -> None:
    """A withdrawn member: contact and message history erased; nothing queued is sent."""
    revoke_member_tokens(uow, event.member_id)
    uow.session.execute(delete(Contact).where(Contact.member_id == event.member_id))
    uow.session.execute(delete(Notification).where(Notification.member_id == event.member_id))


def welcome_member(
    event: MemberRegistered, envelope: Envelope, uow: UnitOfWork, dispatch: Dispatch
) -> None:
    """Keep the member's contact and queue one welcome SMS (one, whatever the redeliveries)."""
    keep_contact(event, envelope, uow)
    contact = uow.session.get(Contact, event.member_id)
    if contact is None:
        return
    key = f"{event.member_id}:welcome"
    if uow.session.scalar(select(Notification.id).where(Notification.idempotency_key == key)):
        return
    notification = Notification(
        id=uuid.uuid4(),
        idempotency_key=key,
        member_id=event.member_id,
        kind="welcome",
        channel="sms",
        status="queued",
        params={"communities": community_names(uow, contact.communities)},
        created_at=uow.now(),
    )
    uow.session.add(notification)
    uow.session.flush()
    uow.after_commit(lambda: dispatch(notification.id))


def send_notification(
    notification_id: uuid.UUID, uow: UnitOfWork, sealer: Sealer, channel: SmsChannel
) -> str:
    """Send one queued message; a retry after a crash reconciles instead of resending."""
    session = uow.session
    claim: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(Notification)
        .where(Notification.id == notification_id, Notification.status == "queued")
        .values(status="sending", attempts=Notification.attempts + 1)
    )
    claimed = claim.rowcount
    notification = session.get(Notification, notification_id)
    if notification is None:
        return "missing"
    if not claimed:
        if notification.status != "sending":
            return notification.status  # already sent, or final
        ref = channel.find(str(notification.id))
        if ref is not None:  # the provider took it before we could record it
            _mark_sent(notification, ref, uow)
            uow.commit()
            return "reconciled"
    uow.commit()  # the attempt is recorded before the provider is called

    contact = session.get(Contact, notification.member_id)
    if contact is None:
        notification.status = "failed"
        uow.commit()
        return "failed"
    person = sealer.open_json(contact.sealed, SealedContact.CONTEXT)
    text = templates.get_template(f"{notification.kind}.sms.j2").render(
        name=person["name"], **notification.params
    )
    ref = channel.send(
        OutgoingSms(
            out_id=str(notification.id),
            phone=person["phone"],
            phone_masked=contact.phone_masked or "",
            kind=notification.kind,
            text=text.strip(),
        )
    )
    _mark_sent(notification, ref, uow)
    uow.commit()
    return "sent"


def _mark_sent(notification: Notification, ref: str, uow: UnitOfWork) -> None:
    notification.status = "sent"
    notification.provider_ref = ref
    notification.sent_at = uow.now()


def stranded(uow: UnitOfWork, older_than: timedelta = timedelta(seconds=30)) -> list[uuid.UUID]:
    """Messages queued long ago whose task never ran (lost between commit and enqueue)."""
    return list(
        uow.session.scalars(
            select(Notification.id)
            .where(
                Notification.status.in_(("queued", "sending")),
                Notification.created_at < uow.now() - older_than,
            )
            .limit(500)
        )
    )


def stats(uow: UnitOfWork) -> dict[str, int]:
    count = select(func.count()).select_from(Notification)
    return {
        "contacts": uow.session.scalar(select(func.count()).select_from(Contact)) or 0,
        "messages": uow.session.scalar(count) or 0,
        "messages_sent": uow.session.scalar(count.where(Notification.status == "sent")) or 0,
        **messaging_stats(uow),
    }
