"""Triggered messages: what notify queues when something happens elsewhere.

Each handler takes an event, its envelope and a unit of work (plus what
:func:`services.notify.handlers.events` binds: the dispatch to the send task, the sealer,
the rules) and only queues messages through :func:`services.notify.bulk.queue_message`;
sending happens in the send task.

| event | message | to |
|---|---|---|
| registration.confirmed | ``welcome`` naming her communities (once, where she lives) | member |
| registration.confirmed | ``members_reported_in``, one per community per day | community staff |
| pairing.made | ``pairing_made``: what, where, the community's contact | member |
| wish.claimed | ``wish_claimed`` | community staff |
| wish.claimed | ``claim_expiring``, due before the claim lapses | member |
| wish.confirmed | ``wish_confirmed`` (thanks) | member |
| activity.returned | ``activity_returned`` with the reason | member |
| report.generated | ``report_ready`` (e-mail + files, SMS) or ``report_failed`` | subscriber |
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time, timedelta

from sqlalchemy import select, update

from services.notify.bulk import Outgoing, queue_message, waiting_message
from services.notify.contacts import (
    community_names,
    masked_names,
    opened_name,
    staff_for,
    told_here,
)
from services.notify.messages import WAITING, Dispatch, Recipient, idempotency_key, record
from services.notify.models import Contact, Notification
from services.notify.rules import Rules, local_day
from shared.config import CAMPAIGN_TZ
from shared.db import UnitOfWork
from shared.events import (
    ActivityChanged,
    Envelope,
    PairingChanged,
    RegistrationChanged,
    ReportGenerated,
    WishChanged,
)
from shared.pii import Sealer, mask_name

#: How a member whose name notify does not know is named to others.
UNNAMED = "党员"


def registration_confirmed(
    event: RegistrationChanged,
    envelope: Envelope,
    uow: UnitOfWork,
    *,
    dispatch: Dispatch,
    rules: Rules,
    sealer: Sealer,
    served: Sequence[str] | None,
) -> None:
    """报到确认: one welcome to the member (whatever the number of confirmations), from the
    deployment serving the district she lives in (``served``: the districts whose residents
    this one tells), and the community staff's daily count of members who reported in."""
    contact = uow.session.get(Contact, event.member_id)
    codes = contact.communities if contact is not None else [event.community_code]
    names = community_names(uow, [*codes, event.community_code])
    if told_here(contact, served):
        queue_message(
            uow,
            dispatch=dispatch,
            recipient=Recipient.member(event.member_id),
            kind="welcome",
            subject="-",
            slot="-",
            params={"communities": [names[code] for code in codes]},
        )
    # 张*: how a member is named to others
    who = (mask_name(opened_name(sealer, contact.sealed)) if contact else "") or UNNAMED
    _count_reported_in(uow, event.community_code, names[event.community_code], who, rules)


def _count_reported_in(uow: UnitOfWork, code: str, community: str, who: str, rules: Rules) -> None:
    """One message per community per day to its staff, counting the day's reports-in."""
    due = rules.next_batch(uow.now())
    slot = local_day(due).isoformat()
    for staff in staff_for(uow, "community", f"community:{code}"):
        batch = waiting_message(
            uow,
            Outgoing(
                recipient=Recipient.staff(staff.id),
                kind="members_reported_in",
                subject=code,
                slot=slot,
                params={"community": community, "count": 0, "names": []},
                due_at=due,
            ),
        )
        if batch is None:  # the day's batch has left, or the staff member takes no messages
            continue
        names = [*list(batch.params.get("names") or []), who]  # type: ignore[call-overload]
        uow.session.execute(
            update(Notification)
            .where(Notification.id == batch.id, Notification.status.in_(WAITING))
            .values(params={**batch.params, "count": len(names), "names": names})
            .execution_options(synchronize_session=False)
        )


def pairing_made(
    event: PairingChanged, envelope: Envelope, uow: UnitOfWork, *, dispatch: Dispatch
) -> None:
    """双对接: the member hears what they were paired with, where, and whom to call."""
    staff = staff_for(uow, "community", f"community:{event.community_code}")
    params: dict[str, object] = {
        "what": event.title,
        "community": community_names(uow, [event.community_code])[event.community_code],
        "contact": "社区工作人员",
    }
    if staff:
        params["staff_contact_id"] = str(staff[0].id)  # opened only when the SMS is rendered
    queue_message(
        uow,
        dispatch=dispatch,
        recipient=Recipient.member(event.member_id),
        kind="pairing_made",
        subject=str(event.pairing_id),
        slot="-",
        params=params,
    )


def wish_claimed(
    event: WishChanged,
    envelope: Envelope,
    uow: UnitOfWork,
    *,
    dispatch: Dispatch,
    rules: Rules,
    sealer: Sealer,
) -> None:
    """A wish was claimed: its community's staff hear of it; the member is reminded before
    the claim lapses. ``claim_expiring`` is urgent (kinds.toml): a warning after the claim
    lapsed is worthless. So it is due at the end of the quiet hours when that is still in
    time, and goes through them only when it is not."""
    subject = str(event.claim_id or event.wish_id)
    who = UNNAMED
    if event.member_id is not None:
        who = masked_names(uow, sealer, [event.member_id], default=UNNAMED)[event.member_id]
    for staff in staff_for(uow, "community", f"community:{event.community_code}"):
        queue_message(
            uow,
            dispatch=dispatch,
            recipient=Recipient.staff(staff.id),
            kind="wish_claimed",
            subject=subject,
            slot="-",
            params={"wish": event.title, "member": who},
        )
    expires = _claim_expiry(event)
    if event.member_id is None or expires is None:
        return
    warn_at = max(expires - rules.claim_warning, uow.now())
    if warn_at >= expires:
        return
    quiet_end = rules.quiet_until(warn_at)
    if quiet_end is not None and quiet_end < expires:
        warn_at = quiet_end
    queue_message(
        uow,
        dispatch=dispatch,
        recipient=Recipient.member(event.member_id),
        kind="claim_expiring",
        subject=subject,
        slot="-",
        params={"wish": event.title, "deadline": expires.astimezone(CAMPAIGN_TZ).isoformat()},
        due_at=warn_at,
    )


def _claim_expiry(event: WishChanged) -> datetime | None:
    """When the claim lapses: the claim's own expiry, else the end of the wish's deadline."""
    expires = getattr(event, "claim_expires_at", None)
    if isinstance(expires, datetime):
        return expires
    deadline = getattr(event, "deadline", None)
    if deadline is None:
        return None
    return datetime.combine(deadline + timedelta(days=1), time(0, 0), CAMPAIGN_TZ)


def claim_closed(event: WishChanged, envelope: Envelope, uow: UnitOfWork) -> None:
    """The claim was fulfilled, released or the wish confirmed: no expiry reminder is due."""
    if event.member_id is None:
        return
    subject = str(event.claim_id or event.wish_id)
    key = idempotency_key(Recipient.member(event.member_id), "claim_expiring", subject, "-")
    pending = uow.session.scalar(select(Notification).where(Notification.idempotency_key == key))
    if pending is None or pending.status not in WAITING:
        return
    done = uow.session.execute(
        update(Notification)
        .where(Notification.id == pending.id, Notification.status.in_(WAITING))
        .values(status="suppressed")
        .execution_options(synchronize_session=False)
    )
    if done.rowcount:  # type: ignore[attr-defined]
        record(uow, pending, "suppressed", detail=f"no longer needed: wish {event.state}")


def wish_confirmed(
    event: WishChanged, envelope: Envelope, uow: UnitOfWork, *, dispatch: Dispatch
) -> None:
    """The community confirmed the fulfilled wish: thanks to the member."""
    claim_closed(event, envelope, uow)
    if event.member_id is None:
        return
    queue_message(
        uow,
        dispatch=dispatch,
        recipient=Recipient.member(event.member_id),
        kind="wish_confirmed",
        subject=str(event.wish_id),
        slot="-",
        params={"wish": event.title},
    )


def activity_returned(
    event: ActivityChanged, envelope: Envelope, uow: UnitOfWork, *, dispatch: Dispatch
) -> None:
    """A record of the five ones was returned: the member hears why (each return once)."""
    queue_message(
        uow,
        dispatch=dispatch,
        recipient=Recipient.member(event.member_id),
        kind="activity_returned",
        subject=str(event.record_id),
        slot=str(envelope.id),
        params={"activity": event.kind, "reason": event.reason or "（未说明）"},
    )


def _scope_label(uow: UnitOfWork, scope: str) -> str:
    kind, _, code = scope.partition(":")
    if kind == "community":
        return community_names(uow, [code])[code]
    return {"city": "全市", "district": f"{code}区县", "unit": f"单位{code}"}.get(kind, scope)


def report_generated(
    event: ReportGenerated, envelope: Envelope, uow: UnitOfWork, *, dispatch: Dispatch
) -> None:
    """A subscriber's report: by e-mail with the files, by SMS in one line; or that it
    failed."""
    if event.recipient is None:
        return
    subscriber = event.subscription_id or event.report_id
    recipient = Recipient.subscriber(
        subscriber, event.recipient.sealed, event.recipient.phone_masked
    )
    kind = "report_failed" if event.failed else "report_ready"
    last_day = local_day(event.period_end - timedelta(seconds=1))
    params: dict[str, object] = {
        "title": event.title,
        "headline": event.headline,
        "scope": _scope_label(uow, event.scope),
        "period": f"{local_day(event.period_start)}至{last_day}",
        "files": [f.model_dump() for f in event.files],
    }
    for channel in event.channels or ["email"]:
        queue_message(
            uow,
            dispatch=dispatch,
            recipient=recipient,
            kind=kind,
            subject=str(event.report_id),
            slot=channel,
            params=params,
            channel=channel,
        )
