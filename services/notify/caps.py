"""The member's daily SMS cap, and the digest that takes what goes over it.

A message over the cap is not lost: it is merged (``suppressed`` with ``merged_into``) into
the recipient's digest of tomorrow morning, made on first need. The merge is a conditional
write like every other (:func:`services.notify.outcomes.move`): a message another task is
sending meanwhile is left to that task, and the digest is not touched.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update

from services.notify.bulk import Outgoing, waiting_message
from services.notify.messages import WAITING, RecentSms, record
from services.notify.models import Notification
from services.notify.outcomes import move
from services.notify.recipients import Person, recipient_of
from services.notify.rendering import RenderError, render_email
from services.notify.rules import Rules, day_bounds, local_day
from shared.db import UnitOfWork

DIGEST_LINES = 3
"""A digest SMS lists at most this many merged messages (the last line counts the rest)."""


def cap_day(n: Notification, now: datetime, rules: Rules) -> tuple[datetime, datetime] | None:
    """The campaign day whose SMS count against ``n``'s recipient's daily cap; None when
    the cap does not apply (switched off, a report subscriber, a digest)."""
    if rules.sms_daily_cap <= 0 or n.recipient_kind == "sealed" or n.kind == "digest":
        return None
    return day_bounds(local_day(now))


def over_cap(n: Notification, recent: list[RecentSms], now: datetime, rules: Rules) -> bool:
    """True when the recipient had their ``sms_daily_cap`` SMS today (campaign day), counted
    in ``recent`` (:func:`services.notify.messages.recent_sms` for :func:`cap_day`)."""
    day = cap_day(n, now, rules)
    if day is None:
        return False
    start, end = day
    sent_today = sum(
        1
        for r in recent
        if r.channel == "sms"
        and start <= r.attempted_at < end
        and (
            r.member_id == n.member_id
            if n.member_id is not None
            else n.staff_id is not None and r.staff_id == n.staff_id
        )
    )
    return sent_today >= rules.sms_daily_cap


def digest_line(n: Notification, person: Person) -> str:
    """One merged message in a digest: its e-mail subject line is its gist."""
    try:
        return render_email(n.kind, {"name": person.name, **n.params}).subject
    except RenderError:
        return n.kind


def _digest(n: Notification, uow: UnitOfWork, rules: Rules) -> Notification:
    """The recipient's digest of tomorrow morning that still waits (made on first need)."""
    morning = rules.next_morning(uow.now())
    day = local_day(morning).isoformat()
    recipient = recipient_of(n)
    for attempt in range(10):  # a digest that has left already: the next one
        digest = waiting_message(
            uow,
            Outgoing(
                recipient=recipient,
                kind="digest",
                subject="-",
                slot=day if attempt == 0 else f"{day}#{attempt}",
                params={"lines": [], "merged": 0},
                due_at=morning,
                channel="sms",
                correlation_id=n.correlation_id,
            ),
        )
        if digest is not None:
            return digest
    raise RuntimeError(f"no waiting digest for {recipient.key} on {day}")


def merge_into_digest(n: Notification, person: Person, uow: UnitOfWork, rules: Rules) -> bool:
    """Fold ``n`` into the recipient's digest and commit; False (nothing written) when
    another task changed ``n`` — or the digest — since it was read."""
    digest = _digest(n, uow, rules)
    if not move(uow, n, "suppressed", merged_into=digest.id, dispatched_at=None):
        return False
    lines = list(digest.params.get("lines") or [])  # type: ignore[call-overload]
    merged = int(str(digest.params.get("merged") or 0)) + 1
    if len(lines) < DIGEST_LINES:
        lines.append(digest_line(n, person))
    elif merged > DIGEST_LINES:
        lines[-1] = f"另有{merged - DIGEST_LINES + 1}条提醒"
    changed = uow.session.execute(
        update(Notification)
        .where(Notification.id == digest.id, Notification.status.in_(WAITING))
        .values(params={"lines": lines, "merged": merged})
        .execution_options(synchronize_session=False)
    )
    if not changed.rowcount:  # type: ignore[attr-defined]
        uow.session.rollback()
        return False
    record(uow, n, "suppressed", detail=f"merged into digest {digest.id} (daily cap)")
    uow.commit()
    return True
