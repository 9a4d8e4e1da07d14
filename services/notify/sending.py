"""Send one message, exactly once, by the rules of the hour.

The send task calls :func:`send_notification` with a message id. Two tasks for one message
are normal (the dispatch after commit, a retry, the sweep), so every status write is
conditional on what was read (:mod:`.outcomes`). In order:

1. A message found ``sending`` belongs to the task that claimed it; only once it is
   stranded (:data:`.claims.STRANDED_SENDING`: that worker died in the provider call) is
   it reopened. A message tried before is first looked up at the providers it was handed
   to (:func:`.claims.earlier_attempt`): taken → ``sent``, never sent twice.
2. Rules that hold it back: not yet due (waits), recipient gone (failed), channel refused
   (``opted_out``, checked now, so queued messages honour a later opt-out), no mobile
   (e-mail instead), quiet hours (``deferred`` to the end of them; ``urgent`` goes anyway),
   the member's daily SMS cap (merged into tomorrow morning's digest, urgent or not, see
   :mod:`.caps`), the provider's per-number limits counted from our own history (another
   provider, or later; see :mod:`.failover`).
3. Render — before the claim, so a message that cannot be rendered fails (an SMS too long
   for the segment cap goes by e-mail when the recipient has an address) instead of being
   left ``sending``; a report whose files are not there yet waits (:mod:`.mail`).
4. The claim: one conditional UPDATE ``queued|deferred → sending`` committed before the
   provider is called, so two tasks never both call it.
5. The call: accepted → ``sent``; a transient error → ``queued`` again, due after a
   backoff, and counted against the provider (failover); a permanent one → ``failed``.

Every step appends to the message's history; final outcomes emit ``notification.*``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from services.notify.caps import cap_day, merge_into_digest, over_cap
from services.notify.channels.base import (
    EmailChannel,
    OutgoingSms,
    ProviderError,
    SmsProvider,
)
from services.notify.claims import claim, earlier_attempt, reopen, stranded
from services.notify.failover import limit_free_at, limits_since, provider_order
from services.notify.mail import ReportMissing, outgoing_email
from services.notify.messages import WAITING, RecentSms, recent_sms
from services.notify.models import Contact, Notification
from services.notify.outcomes import (
    BUSY,
    Outcome,
    backoff,
    emit_status,
    failed_attempt,
    finish,
    hold,
    sent,
)
from services.notify.recipients import Person, channel_now, masked, person_of, render_params
from services.notify.rendering import RenderError, SmsTooLong, render_sms
from services.notify.rules import Rules
from shared.db import UnitOfWork
from shared.pii import Sealer

__all__ = ["Outcome", "Sender", "emit_status", "send_notification"]

#: Provider limits that free up within this wait are waited for; beyond it, rate_limited.
LIMIT_WAIT = timedelta(hours=1)


@dataclass
class Sender:
    """What sending needs besides the unit of work (tests replace the providers).

    ``reports_dir`` is ``settings.reports_dir``: ``$SERVICEMONTH_HOME/reports``, the folder
    reporting writes to (one shared volume in the deployment, see :mod:`.mail`).
    """

    sealer: Sealer
    providers: list[SmsProvider]
    email: EmailChannel
    rules: Rules = field(default_factory=Rules)
    district: str = "410300"
    reports_dir: Path = Path("var/reports")


def send_notification(notification_id: uuid.UUID, uow: UnitOfWork, sender: Sender) -> Outcome:
    """Move one message as far as it can go now (see the module's docstring)."""
    loaded = _load(notification_id, uow)
    if loaded is None:
        return Outcome("missing")
    n, contact = loaded
    now = uow.now()
    if n.status == "sending" and not (stranded(n, now) and reopen(n, uow)):
        return BUSY  # another task is in the provider call (or just reopened it)
    if n.status not in WAITING:
        return Outcome(n.status)
    if n.due_at is not None and n.due_at > now:
        return Outcome("waiting")

    person = person_of(n, uow, sender.sealer, contact=contact)
    if person is None:
        return finish(n, uow, sender, "failed", error="no contact for the recipient")
    if n.tried:  # an earlier attempt failed: a timeout may still have been accepted
        earlier = earlier_attempt(n, person, uow, sender)
        if earlier is not None:
            return earlier
    channel = channel_now(n, person)
    if channel is None:
        return finish(n, uow, sender, "opted_out", detail=f"{n.channel} refused")
    if channel == "email":
        note = None if n.channel == "email" else f"by e-mail: {n.channel} unavailable"
        return _send_email(n, person, uow, sender, note)
    return _send_sms(n, person, uow, sender)


def _load(
    notification_id: uuid.UUID, uow: UnitOfWork
) -> tuple[Notification, Contact | None] | None:
    """The message as stored now, locked for this transaction (PostgreSQL), and a member's
    contact read in the same query (None for other recipients, or a member who is gone)."""
    row = uow.session.execute(
        select(Notification, Contact)
        .outerjoin(Contact, Contact.member_id == Notification.member_id)
        .where(Notification.id == notification_id)
        .with_for_update(of=Notification)
        .execution_options(populate_existing=True)
    ).first()
    return None if row is None else (row[0], row[1])


# --- SMS ----------------------------------------------------------------------------------


def _send_sms(n: Notification, person: Person, uow: UnitOfWork, sender: Sender) -> Outcome:
    rules, now = sender.rules, uow.now()
    if not n.urgent and (until := rules.quiet_until(now)) is not None:
        return hold(uow, n, until, detail=f"quiet hours until {until.isoformat()}")
    # what the cap and the providers' limits count, in one query
    recent = recent_sms(
        uow, n, day=cap_day(n, now, rules), since=limits_since(sender.providers, now)
    )
    if over_cap(n, recent, now, rules):  # urgent or not: urgent bypasses quiet hours only
        return Outcome("suppressed") if merge_into_digest(n, person, uow, rules) else BUSY

    chosen, free_at = _provider(n, uow, sender, recent)
    if chosen is None:
        if free_at is not None and free_at - now <= LIMIT_WAIT:
            return hold(uow, n, free_at, detail=f"provider limits until {free_at.isoformat()}")
        return finish(n, uow, sender, "rate_limited", detail="every provider's limit reached")

    try:
        rendered = render_sms(n.kind, render_params(n, person, uow, sender.sealer))
    except SmsTooLong as exc:
        if person.emailable:
            return _send_email(n, person, uow, sender, f"by e-mail: {exc}")
        return finish(n, uow, sender, "failed", error=str(exc))
    except RenderError as exc:
        return finish(n, uow, sender, "failed", error=str(exc))
    sms = OutgoingSms(
        out_id=str(n.id),
        phone=person.phone or "",
        phone_masked=masked(person, "sms") or "",
        kind=n.kind,
        template_code=rendered.template_code.get(chosen.name, ""),
        params=rendered.params,
        text=rendered.text,
        segments=rendered.segments,
    )

    if not claim(n, uow, chosen.name, "sms", sms.phone_masked):
        return BUSY
    try:  # no transaction is open during the call
        ref = chosen.send(sms)
    except ProviderError as exc:
        return failed_attempt(n, uow, sender, chosen.name, exc, permanent=not exc.retryable)
    return sent(n, uow, sender, chosen.name, ref, segments=sms.segments, healthy=True)


def _provider(
    n: Notification, uow: UnitOfWork, sender: Sender, recent: list[RecentSms]
) -> tuple[SmsProvider | None, datetime | None]:
    """The first provider (failover order) whose per-number limits allow another SMS now;
    else None and when the soonest frees up."""
    free_at: list[datetime] = []
    now = uow.now()
    for provider in provider_order(n, uow, sender):
        blocked_until = limit_free_at(n, provider, recent, now)
        if blocked_until is None:
            return provider, None
        free_at.append(blocked_until)
    return None, min(free_at) if free_at else None


# --- e-mail -------------------------------------------------------------------------------


def _send_email(
    n: Notification, person: Person, uow: UnitOfWork, sender: Sender, note: str | None
) -> Outcome:
    channel, to = sender.email, masked(person, "email")
    try:
        mail = outgoing_email(n, person, uow, sender.sealer, sender.reports_dir, to)
    except ReportMissing as exc:  # reporting's files not there (yet): wait, then fail
        if n.attempts + 1 >= sender.rules.max_attempts:
            return finish(n, uow, sender, "failed", error=str(exc))
        wait = timedelta(seconds=backoff(sender.rules, n.attempts + 1))
        return hold(
            uow,
            n,
            uow.now() + wait,
            status=n.status,
            error=str(exc),
            detail="waiting for the report's files",
            retry=True,
            count_attempt=True,
        )
    except RenderError as exc:
        return finish(n, uow, sender, "failed", error=str(exc))

    if not claim(n, uow, channel.name, "email", to, note):
        return BUSY
    try:  # no transaction is open during the call
        ref = channel.send(mail)
    except ProviderError as exc:
        return failed_attempt(n, uow, sender, channel.name, exc, permanent=not exc.retryable)
    return sent(n, uow, sender, channel.name, ref)
