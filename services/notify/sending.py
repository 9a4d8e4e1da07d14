"""Send one message, exactly once, by the rules of the hour.

The send task calls :func:`send_notification` with a message id. In order:

1. A message found ``sending`` was cut short (a worker died in the provider call): ask the
   providers it was handed to whether they took it (``find`` by our out-id) and record it
   sent if so; only if none did is it sent again.
2. Rules that hold it back: not yet due (waits), recipient gone (failed), channel refused
   (``opted_out``, checked now, so queued messages honour a later opt-out), no mobile
   (e-mail instead), quiet hours (``deferred`` to the end of them; ``urgent`` goes anyway),
   the member's daily SMS cap (merged into tomorrow morning's ``digest``), the provider's
   per-number limits counted from our own history (another provider, or later).
3. The claim: one conditional UPDATE ``queued|deferred → sending`` is committed before the
   provider is called, so two workers never both call it.
4. The call: accepted → ``sent`` (with the provider and its reference); a transient error
   puts it back to ``queued`` for a retry with backoff and counts against the provider
   (failover: past ``failover_after`` consecutive failures the provider is skipped for a
   cool-down); a permanent error fails it at once.

Every step appends to the message's history; final outcomes emit ``notification.*``.
"""

from __future__ import annotations

import mimetypes
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from markupsafe import Markup, escape
from sqlalchemy import func, select, update
from sqlalchemy.orm.attributes import flag_modified

from services.notify.channels.base import (
    Attachment,
    EmailChannel,
    OutgoingEmail,
    OutgoingSms,
    PermanentProviderError,
    ProviderError,
    SmsProvider,
)
from services.notify.failover import limit_free_at, provider_failed, provider_ok, provider_order
from services.notify.messages import (
    WAITING,
    Recipient,
    idempotency_key,
    queue_message,
    record,
)
from services.notify.models import Contact, Notification, StaffContact
from services.notify.rendering import RenderError, render_email, render_sms
from services.notify.rules import Rules, day_bounds, local_day
from shared.db import UnitOfWork
from shared.events import (
    NotificationChanged,
    NotificationFailed,
    NotificationSent,
    SealedContact,
)
from shared.pii import Sealer

#: Statuses that count as "an SMS went to this number" for caps and provider limits.
SENT_LIKE = ("sending", "sent", "delivered")


@dataclass
class Sender:
    """What sending needs besides the unit of work (tests replace the providers)."""

    sealer: Sealer
    providers: list[SmsProvider]
    email: EmailChannel
    rules: Rules = field(default_factory=Rules)
    district: str = "410300"
    reports_dir: Path = Path("var/reports")


@dataclass(frozen=True)
class Outcome:
    """What one run of the send task did; ``retry_in`` asks the task to run again."""

    status: str
    retry_in: float | None = None


@dataclass(frozen=True)
class Person:
    name: str
    phone: str | None
    email: str | None
    sms_enabled: bool
    email_enabled: bool


def send_notification(notification_id: uuid.UUID, uow: UnitOfWork, sender: Sender) -> Outcome:
    """Move one message as far as it can go now (see the module's docstring)."""
    session = uow.session
    n = session.get(Notification, notification_id)
    if n is None:
        return Outcome("missing")
    if n.status == "sending":
        reconciled = _reconcile(n, uow, sender)
        if reconciled is not None:
            return reconciled
    if n.status not in WAITING:
        return Outcome(n.status)
    if n.tried:  # an earlier attempt failed: a timeout may still have been accepted
        taken = _taken(n, uow, sender)
        if taken is not None:
            return taken
    now = uow.now()
    if n.due_at is not None and n.due_at > now:
        return Outcome("waiting")

    person = _person(n, uow, sender.sealer)
    if person is None:
        return _finish(n, uow, sender, "failed", error="no contact for the recipient")
    channel = _channel(n, person)
    if channel is None:
        return _finish(n, uow, sender, "opted_out", detail=f"{n.channel} refused")
    if channel != n.channel:
        record(uow, n, n.status, detail=f"{n.channel} unavailable: by {channel}")
        n.channel = channel
        n.to_masked = _mask(person, channel)
    if channel == "email":
        return _send_email(n, person, uow, sender)

    rules = sender.rules
    if not n.urgent:
        until = rules.quiet_until(now)
        if until is not None:
            n.status, n.due_at = "deferred", until
            record(uow, n, "deferred", detail=f"quiet hours until {until.isoformat()}")
            uow.commit()
            return Outcome("deferred")
        if n.kind != "digest" and _over_cap(n, uow, rules):
            _merge_into_digest(n, person, uow, rules)
            uow.commit()
            return Outcome("suppressed")
    return _send_sms(n, person, uow, sender)


# --- recipients --------------------------------------------------------------------------


def _person(n: Notification, uow: UnitOfWork, sealer: Sealer) -> Person | None:
    sealed: str | None
    sms = email = True
    if n.recipient_kind == "member":
        contact = uow.session.get(Contact, n.member_id)
        if contact is None:
            return None
        sealed, sms, email = contact.sealed, contact.sms_enabled, contact.email_enabled
    elif n.recipient_kind == "staff":
        staff = uow.session.get(StaffContact, n.staff_id)
        if staff is None or staff.state != "active":
            return None
        sealed, sms, email = staff.sealed, staff.sms_enabled, staff.email_enabled
    else:
        sealed = n.sealed_to
    if not sealed:
        return None
    opened = sealer.open_json(sealed, SealedContact.CONTEXT)
    return Person(
        name=str(opened.get("name") or ""),
        phone=opened.get("phone") or None,
        email=opened.get("email") or None,
        sms_enabled=sms,
        email_enabled=email,
    )


def _channel(n: Notification, person: Person) -> str | None:
    """The channel to use now: the one queued if still accepted; the other one only when
    the queued one has no address (an opted-out channel is never swapped for another)."""
    if n.channel == "sms":
        if not person.sms_enabled:
            return None
        if person.phone:
            return "sms"
        return "email" if person.email and person.email_enabled else None
    if not person.email_enabled:
        return None
    if person.email:
        return "email"
    return "sms" if person.phone and person.sms_enabled else None


def _mask(person: Person, channel: str) -> str | None:
    from services.notify.contacts import mask_email
    from shared.pii import mask_phone

    if channel == "email":
        return mask_email(person.email) if person.email else None
    return mask_phone(person.phone) if person.phone else None


def recipient_of(n: Notification) -> Recipient:
    if n.recipient_kind == "member" and n.member_id is not None:
        return Recipient.member(n.member_id)
    if n.recipient_kind == "staff" and n.staff_id is not None:
        return Recipient.staff(n.staff_id)
    subscriber = n.idempotency_key.split("|", 1)[0].split(":", 1)[1]
    return Recipient.subscriber(uuid.UUID(subscriber), n.sealed_to or "", n.to_masked)


# --- caps and the digest ---------------------------------------------------------------


def _same_recipient(n: Notification) -> Any:
    if n.member_id is not None:
        return Notification.member_id == n.member_id
    if n.staff_id is not None:
        return Notification.staff_id == n.staff_id
    return Notification.id == n.id


def _over_cap(n: Notification, uow: UnitOfWork, rules: Rules) -> bool:
    """True when the recipient had their ``sms_daily_cap`` SMS today (campaign day)."""
    if rules.sms_daily_cap <= 0 or n.recipient_kind == "sealed":
        return False
    start, end = day_bounds(local_day(uow.now()))
    sent_today = uow.session.scalar(
        select(func.count())
        .select_from(Notification)
        .where(
            _same_recipient(n),
            Notification.channel == "sms",
            Notification.status.in_(SENT_LIKE),
            Notification.attempted_at >= start,
            Notification.attempted_at < end,
        )
    )
    return (sent_today or 0) >= rules.sms_daily_cap


DIGEST_LINES = 3
"""A digest SMS lists at most this many merged messages (the last line counts the rest)."""


def _digest_line(n: Notification, person: Person) -> str:
    """One merged message in a digest: its e-mail subject line is its gist."""
    try:
        return render_email(n.kind, {"name": person.name, **n.params}).subject
    except RenderError:
        return n.kind


def _merge_into_digest(
    n: Notification, person: Person, uow: UnitOfWork, rules: Rules
) -> Notification:
    """Fold ``n`` into the recipient's digest of tomorrow morning (made on first need)."""
    morning = rules.next_morning(uow.now())
    day = local_day(morning).isoformat()
    recipient = recipient_of(n)
    digest: Notification | None = None
    for attempt in range(10):
        slot = day if attempt == 0 else f"{day}#{attempt}"
        key = idempotency_key(recipient, "digest", "-", slot)
        digest = uow.session.scalar(
            select(Notification).where(Notification.idempotency_key == key).with_for_update()
        )
        if digest is None:
            queue_message(
                uow,
                recipient=recipient,
                kind="digest",
                subject="-",
                slot=slot,
                params={"lines": [], "merged": 0},
                due_at=morning,
                correlation_id=n.correlation_id,
                channel="sms",
            )
            digest = uow.session.scalar(
                select(Notification).where(Notification.idempotency_key == key)
            )
        if digest is not None and digest.status in WAITING:
            break
    assert digest is not None
    lines = list(digest.params.get("lines") or [])  # type: ignore[call-overload]
    merged = int(str(digest.params.get("merged") or 0)) + 1
    if len(lines) < DIGEST_LINES:
        lines.append(_digest_line(n, person))
    elif merged > DIGEST_LINES:
        lines[-1] = f"另有{merged - DIGEST_LINES + 1}条提醒"
    digest.params = {"lines": lines, "merged": merged}
    flag_modified(digest, "params")
    n.status, n.merged_into = "suppressed", digest.id
    record(uow, n, "suppressed", detail=f"merged into digest {digest.id} (daily cap)")
    return digest


# --- SMS: providers, limits, the claim, the call -------------------------------------------


def _outgoing_sms(
    n: Notification, person: Person, uow: UnitOfWork, sealer: Sealer, provider: str
) -> OutgoingSms:
    rendered = render_sms(n.kind, _render_params(n, person, uow, sealer))
    return OutgoingSms(
        out_id=str(n.id),
        phone=person.phone or "",
        phone_masked=n.to_masked or "",
        kind=n.kind,
        template_code=rendered.template_code.get(provider, ""),
        params=rendered.params,
        text=rendered.text,
        segments=rendered.segments,
    )


def _render_params(
    n: Notification, person: Person, uow: UnitOfWork, sealer: Sealer
) -> dict[str, Any]:
    """The template's params: the message's own, the recipient's name, and the community
    contact's name and number (opened only here, for the provider call)."""
    params: dict[str, Any] = {"name": person.name, **n.params}
    staff_id = params.pop("staff_contact_id", None)
    if staff_id:
        staff = uow.session.get(StaffContact, uuid.UUID(str(staff_id)))
        if staff is not None and staff.state == "active":
            opened = sealer.open_json(staff.sealed, SealedContact.CONTEXT)
            params["contact"] = " ".join(
                str(v) for v in (opened.get("name"), opened.get("phone")) if v
            )
    return params


def _send_sms(n: Notification, person: Person, uow: UnitOfWork, sender: Sender) -> Outcome:
    chosen: SmsProvider | None = None
    free_at: list[datetime] = []
    for provider in provider_order(n, uow, sender):
        blocked_until = limit_free_at(n, provider, uow)
        if blocked_until is None:
            chosen = provider
            break
        free_at.append(blocked_until)
    if chosen is None:
        soonest = min(free_at) if free_at else uow.now()
        if soonest - uow.now() <= timedelta(hours=1):
            n.status, n.due_at = "deferred", soonest
            record(uow, n, "deferred", detail=f"provider limits until {soonest.isoformat()}")
            uow.commit()
            return Outcome("deferred")
        return _finish(n, uow, sender, "rate_limited", detail="every provider's limit reached")

    if not _claim(n, uow, chosen.name):
        return Outcome("busy")
    sms = _outgoing_sms(n, person, uow, sender.sealer, chosen.name)
    try:
        ref = chosen.send(sms)
    except PermanentProviderError as exc:
        return _failed_attempt(n, uow, sender, chosen.name, exc, permanent=True)
    except ProviderError as exc:
        return _failed_attempt(n, uow, sender, chosen.name, exc, permanent=not exc.retryable)
    provider_ok(uow, chosen.name)
    n.segments = sms.segments
    return _sent(n, uow, sender, chosen.name, ref)


def _claim(n: Notification, uow: UnitOfWork, provider: str) -> bool:
    """``queued|deferred → sending``, committed before the call; False if someone else won."""
    now = uow.now()
    claimed = uow.session.execute(
        update(Notification)
        .where(Notification.id == n.id, Notification.status == n.status)
        .values(
            status="sending",
            attempts=Notification.attempts + 1,
            attempted_at=now,
            provider=provider,
            tried=[*(n.tried or []), provider],
        )
        .execution_options(synchronize_session=False)
    )
    if not claimed.rowcount:  # type: ignore[attr-defined]
        uow.session.rollback()
        return False
    record(uow, n, "sending", provider=provider, detail=f"attempt {n.attempts + 1}")
    uow.commit()
    uow.session.refresh(n)
    return True


def _taken(n: Notification, uow: UnitOfWork, sender: Sender) -> Outcome | None:
    """If a provider this message was handed to took it after all, record it sent."""
    person = _person(n, uow, sender.sealer)
    if person is None:
        return None
    since = n.created_at
    if n.channel == "email":
        found = sender.email.find(_outgoing_email(n, person, uow, sender))
        if found is not None:
            return _sent(n, uow, sender, sender.email.name, found, detail="reconciled")
        return None
    by_name = {p.name: p for p in sender.providers}
    for name in reversed(list(dict.fromkeys(n.tried or []))):
        provider = by_name.get(name)
        if provider is None:
            continue
        ref = provider.find(_outgoing_sms(n, person, uow, sender.sealer, name), since)
        if ref is not None:
            return _sent(n, uow, sender, name, ref, detail="reconciled")
    return None


def _reconcile(n: Notification, uow: UnitOfWork, sender: Sender) -> Outcome | None:
    """A message left ``sending``: did a provider take it? Then it is sent, not resent."""
    taken = _taken(n, uow, sender)
    if taken is not None:
        return taken
    # Nobody took it: back to the queue (unless another worker got there first).
    reopened = uow.session.execute(
        update(Notification)
        .where(
            Notification.id == n.id,
            Notification.status == "sending",
            Notification.attempts == n.attempts,
        )
        .values(status="queued")
        .execution_options(synchronize_session=False)
    )
    if not reopened.rowcount:  # type: ignore[attr-defined]
        uow.session.rollback()
        return Outcome("busy")
    record(uow, n, "queued", detail="interrupted attempt not received: sending again")
    uow.commit()
    uow.session.refresh(n)
    return None


def _failed_attempt(
    n: Notification,
    uow: UnitOfWork,
    sender: Sender,
    provider: str,
    exc: Exception,
    *,
    permanent: bool,
) -> Outcome:
    error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
    if permanent:
        return _finish(n, uow, sender, "failed", provider=provider, error=error)
    provider_failed(uow, provider, error, sender.rules)
    if n.attempts >= sender.rules.max_attempts:
        return _finish(n, uow, sender, "failed", provider=provider, error=error)
    n.status, n.error = "queued", error
    record(uow, n, "retry", provider=provider, error=error, detail=f"attempt {n.attempts}")
    uow.commit()
    delay = min(sender.rules.retry_delay * 2 ** max(n.attempts - 1, 0), 300.0)
    return Outcome("retry", retry_in=delay)


# --- e-mail -----------------------------------------------------------------------------


def _attachments(n: Notification, sender: Sender) -> list[Attachment]:
    """The report's files, read from the reports folder (never outside it); PNG inline."""
    found = []
    root = sender.reports_dir.resolve()
    files = n.params.get("files") or []
    for index, item in enumerate(files if isinstance(files, list) else []):
        path = (root / str(item["path"])).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            continue
        media = str(item.get("media_type") or mimetypes.guess_type(path.name)[0] or "")
        found.append(
            Attachment(
                filename=path.name,
                media_type=media or "application/octet-stream",
                data=path.read_bytes(),
                inline_cid=f"figure{index}.{n.id}" if media == "image/png" else None,
            )
        )
    return found


def _outgoing_email(
    n: Notification, person: Person, uow: UnitOfWork, sender: Sender
) -> OutgoingEmail:
    attachments = _attachments(n, sender) if n.params.get("files") else []
    params = _render_params(n, person, uow, sender.sealer)
    figures = [a for a in attachments if a.inline_cid]
    if figures:
        params["report_html"] = Markup(
            "".join(
                f'<p><img src="cid:{escape(a.inline_cid)}" alt="{escape(a.filename)}"></p>'
                for a in figures
            )
        )
    rendered = render_email(n.kind, params)
    return OutgoingEmail(
        out_id=str(n.id),
        to=person.email or "",
        to_masked=n.to_masked or "",
        kind=n.kind,
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        attachments=attachments,
    )


def _send_email(n: Notification, person: Person, uow: UnitOfWork, sender: Sender) -> Outcome:
    channel = sender.email
    if not _claim(n, uow, channel.name):
        return Outcome("busy")
    try:
        ref = channel.send(_outgoing_email(n, person, uow, sender))
    except ProviderError as exc:
        return _failed_attempt(n, uow, sender, channel.name, exc, permanent=not exc.retryable)
    return _sent(n, uow, sender, channel.name, ref)


# --- outcomes ---------------------------------------------------------------------------


def _sent(
    n: Notification,
    uow: UnitOfWork,
    sender: Sender,
    provider: str,
    ref: str,
    detail: str | None = None,
) -> Outcome:
    n.status, n.provider, n.provider_ref = "sent", provider, ref[:100]
    n.sent_at, n.error = uow.now(), None
    record(uow, n, "sent", provider=provider, reference=ref[:100], detail=detail)
    emit_status(n, uow, sender.district, NotificationSent)
    uow.commit()
    return Outcome("reconciled" if detail == "reconciled" else "sent")


def _finish(
    n: Notification,
    uow: UnitOfWork,
    sender: Sender,
    status: str,
    *,
    provider: str | None = None,
    error: str | None = None,
    detail: str | None = None,
) -> Outcome:
    """A final status without a send (opted_out, rate_limited, failed)."""
    n.status, n.error = status, error
    record(uow, n, status, provider=provider, error=error, detail=detail)
    if status == "failed":
        emit_status(n, uow, sender.district, NotificationFailed)
    uow.commit()
    return Outcome(status)


def emit_status(
    n: Notification, uow: UnitOfWork, district: str, cls: type[NotificationChanged]
) -> None:
    uow.emit(
        cls(
            notification_id=n.id,
            member_id=n.member_id,
            kind=n.kind,
            channel="email" if n.channel == "email" else "sms",
            status=n.status,
            provider=n.provider,
        ),
        district=district,
    )
