"""Send one message, exactly once: gather the facts, ask the policy, carry its decision out.

The send task calls :func:`send_notification` with a message id. What to do with a message
is :func:`services.notify.policy.decide`'s (quiet hours, daily caps, provider limits,
opt-outs, provider choice); this module is the one that does it: it reads the facts, and
writes every outcome — the claim, the provider call, ``sent``/``failed``/``deferred``, the
merge into a digest, the providers' health. Two tasks for one message are normal (the
dispatch after commit, a retry, the sweep), so every status write is conditional on what
was read (:func:`services.notify.messages.move`). In order:

1. A message found ``sending`` belongs to the task that claimed it; only once it is
   stranded (:data:`.policy.STRANDED_SENDING`: that worker died in the provider call) is
   it reopened. A message tried before is first looked up at the providers it was handed
   to (:func:`earlier_attempt`): taken → ``sent``, never sent twice; the look-up failing →
   wait and ask again; not found → sent again only once each provider's look-up can have
   listed the earlier attempt (its ``settle_after``: Tencent lists receipts, which lag).
2. The policy's decision: leave it, fail it, defer it, merge it into the digest (the
   recipient's of tomorrow morning, made on first need), or send it through a provider.
3. Render — before the claim, so a message that cannot be rendered fails (an SMS too long
   for the segment cap goes by e-mail when the recipient has an address) instead of being
   left ``sending``; a report whose files cannot be fetched from reporting yet waits
   (:mod:`.mail`, :mod:`.report_files`), holding no transaction across the fetch.
4. The claim (:func:`claim`): one conditional UPDATE ``queued|deferred → sending``
   committed before the provider is called, so two tasks never both call it.
5. The call: accepted → ``sent``; a transient error → ``queued`` again, due after a
   backoff, and counted against the provider (failover); a permanent one → ``failed``.

Every step appends to the message's history; final outcomes emit ``notification.*``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from services.notify import health, policy
from services.notify.bulk import Outgoing, waiting_message
from services.notify.channels.base import (
    EmailChannel,
    OutgoingEmail,
    OutgoingSms,
    ProviderError,
    SmsProvider,
)
from services.notify.mail import REPORT_KINDS, ReportMissing, outgoing_email
from services.notify.messages import WAITING, emit_status, move, recent_sms, record
from services.notify.models import Contact, Notification
from services.notify.recipients import Person, masked, person_of, recipient_of, render_params
from services.notify.rendering import (
    RenderedSms,
    RenderError,
    SmsTooLong,
    render_email,
    render_sms,
)
from services.notify.report_files import ReportFiles
from services.notify.rules import Rules, local_day
from shared.db import UnitOfWork
from shared.events import NotificationFailed, NotificationSent
from shared.pii import Sealer, error_line

__all__ = [
    "BUSY",
    "Outcome",
    "Sender",
    "claim",
    "earlier_attempt",
    "failed_attempt",
    "merge_into_digest",
    "message_facts",
    "providers_now",
    "send_notification",
    "sent",
]

DIGEST_LINES = 3
"""A digest SMS lists at most this many merged messages (the last line counts the rest)."""


@dataclass
class Sender:
    """What sending needs besides the unit of work (built by :mod:`.bootstrap`; tests
    replace the providers).

    ``reports`` gives the report e-mail's files: reporting's API over HTTP
    (:class:`~.report_files.HttpReportFiles`); None: a report cannot be sent (it waits).
    """

    sealer: Sealer
    providers: list[SmsProvider]
    email: EmailChannel
    rules: Rules = field(default_factory=Rules)
    district: str = "410300"
    reports: ReportFiles | None = None


class _NoReportFiles:
    def fetch(self, path: str) -> bytes:
        raise ReportMissing(f"report file {path}: no way to fetch report files here")


@dataclass(frozen=True)
class Outcome:
    """What one run of the send task did; ``retry_in`` asks the task to run again then."""

    status: str
    retry_in: float | None = None


BUSY = Outcome("busy")
"""Another task has the message (or changed it under us): this run does nothing."""


def send_notification(notification_id: uuid.UUID, uow: UnitOfWork, sender: Sender) -> Outcome:
    """Move one message as far as it can go now (see the module's docstring)."""
    loaded = _load(notification_id, uow)
    if loaded is None:
        return Outcome("missing")
    n, contact = loaded
    now = uow.now()
    if n.status == "sending" and not (policy.stranded(n.attempted_at, now) and reopen(n, uow)):
        return BUSY  # another task is in the provider call (or just reopened it)
    if n.status not in WAITING:
        return Outcome(n.status)
    if n.due_at is not None and n.due_at > now:
        return Outcome("waiting")  # before opening the contact: nothing to decide yet

    person = person_of(n, uow, sender.sealer, contact=contact)
    facts = _facts(n, person, uow, sender)
    decision = policy.decide(facts)
    if isinstance(decision, policy.AskProviders) and person is not None:
        earlier = earlier_attempt(n, person, uow, sender)
        if earlier is not None:
            return earlier
        decision = policy.decide(replace(facts, asked=True))  # not taken: the rules now
    return _carry_out(decision, n, person, uow, sender)


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


# --- the facts -------------------------------------------------------------------------------


def _message(n: Notification) -> policy.Message:
    return policy.Message(
        kind=n.kind,
        channel=n.channel,
        recipient_kind=n.recipient_kind,
        member_id=n.member_id,
        staff_id=n.staff_id,
        phone_hmac=n.phone_hmac,
        urgent=n.urgent,
        due_at=n.due_at,
        tried=tuple(n.tried or ()),
        attempts=n.attempts,
    )


def providers_now(uow: UnitOfWork, sender: Sender) -> list[policy.Provider]:
    """The SMS providers in configured order, with their cool-downs (read only when there
    is a choice to make)."""
    names = [p.name for p in sender.providers]
    cooling = health.cooling_until(uow, names) if len(names) > 1 else {}
    return [
        policy.Provider(p.name, tuple(getattr(p, "limits", ()) or ()), cooling.get(p.name))
        for p in sender.providers
    ]


def message_facts(
    n: Notification,
    reach: policy.Reachable | None,
    now: datetime,
    sender: Sender,
    providers: list[policy.Provider],
    recent: list[policy.RecentSms],
) -> policy.Facts:
    """What the policy reads of ``n`` given the facts loaded for it (here, or once for a
    batch by :mod:`.batch`)."""
    return policy.Facts(
        message=_message(n),
        recipient=reach,
        now=now,
        rules=sender.rules,
        providers=providers,
        recent=recent,
    )


def _facts(n: Notification, person: Person | None, uow: UnitOfWork, sender: Sender) -> policy.Facts:
    """What the policy reads: the message, its recipient, and — for an SMS that may go
    now — the SMS recently gone to them (one query) and the providers' health."""
    now, message = uow.now(), _message(n)
    reach = person.reachable if person is not None else None
    providers: list[policy.Provider] = []
    recent: list[policy.RecentSms] = []
    quiet = not n.urgent and sender.rules.quiet_until(now) is not None
    if reach is not None and policy.channel_now(n.channel, reach) == "sms" and not quiet:
        providers = providers_now(uow, sender)
        day, since = policy.counted_since(message, providers, now, sender.rules)
        recent = recent_sms(uow, n, day=day, since=since)
    return message_facts(n, reach, now, sender, providers, recent)


# --- carrying the decision out ----------------------------------------------------------


def _carry_out(
    decision: policy.Decision,
    n: Notification,
    person: Person | None,
    uow: UnitOfWork,
    sender: Sender,
) -> Outcome:
    match decision:
        case policy.NotDue():
            return Outcome("waiting")
        case policy.Skip(status=status, error=error, detail=detail):
            return finish(n, uow, sender, status, error=error, detail=detail)
        case policy.Wait(until=until, detail=detail):
            return hold(uow, n, until, detail=detail)
        case policy.MergeIntoDigest() if person is not None:
            ok = merge_into_digest(n, person, uow, sender.rules)
            return Outcome("suppressed") if ok else BUSY
        case policy.SendEmail(note=note) if person is not None:
            return _send_email(n, person, uow, sender, note)
        case policy.SendSms(provider=name) if person is not None:
            return _send_sms(n, person, uow, sender, name)
    raise AssertionError(f"no way to carry out {decision!r}")  # pragma: no cover


def _send_sms(
    n: Notification, person: Person, uow: UnitOfWork, sender: Sender, name: str
) -> Outcome:
    chosen = next(p for p in sender.providers if p.name == name)
    try:
        rendered = render_sms(n.kind, render_params(n, person, uow, sender.sealer))
    except SmsTooLong as exc:
        return _carry_out(
            policy.too_long_for_sms(person.reachable, str(exc)), n, person, uow, sender
        )
    except RenderError as exc:
        return finish(n, uow, sender, "failed", error=str(exc))
    sms = outgoing_sms(n, person, rendered, chosen.name)

    if not claim(n, uow, chosen.name, "sms", sms.phone_masked):
        return BUSY
    try:  # no transaction is open during the call
        ref = chosen.send(sms)
    except ProviderError as exc:
        return failed_attempt(n, uow, sender, chosen.name, exc, permanent=not exc.retryable)
    return sent(n, uow, sender, chosen.name, ref, segments=sms.segments, healthy=True)


def _send_email(
    n: Notification, person: Person, uow: UnitOfWork, sender: Sender, note: str | None
) -> Outcome:
    channel, to = sender.email, masked(person, "email")
    if n.kind in REPORT_KINDS:
        # Fetching the report is a network call: the transaction that read (and on
        # PostgreSQL locked) ``n`` ends first; what follows is conditional on what was read.
        uow.session.commit()
    reports = sender.reports or _NoReportFiles()
    try:
        mail = outgoing_email(n, person, uow, sender.sealer, reports, to)
    except ReportMissing as exc:  # reporting's files not there (yet): wait, then fail
        then = policy.after_failure(
            n.attempts + 1, permanent=False, now=uow.now(), rules=sender.rules
        )
        if isinstance(then, policy.Skip):
            return finish(n, uow, sender, "failed", error=str(exc))
        return hold(
            uow,
            n,
            then.until,
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


# --- the claim, and what an earlier attempt did ---------------------------------------------


def reopen(n: Notification, uow: UnitOfWork) -> bool:
    """A stranded ``sending`` back to ``queued`` (its providers are asked before any
    resend); False when another task got there first."""
    if not move(uow, n, "queued", expect="sending"):
        return False
    record(uow, n, "queued", detail="attempt interrupted: asking the provider before resending")
    uow.commit()
    return True


def claim(
    n: Notification,
    uow: UnitOfWork,
    provider: str,
    channel: str,
    to: str | None,
    note: str | None = None,
) -> bool:
    """``queued|deferred → sending``, committed before the call; False if someone else won.

    After it the task touches the database only once the provider has answered: no
    transaction (on SQLite, no write lock) is held across the call.
    """
    now = uow.now()
    if not move(
        uow,
        n,
        "sending",
        attempts=n.attempts + 1,
        attempted_at=now,
        provider=provider,
        tried=[*(n.tried or []), provider],
        channel=channel,
        to_masked=to,
    ):
        return False
    detail = f"attempt {n.attempts}" + (f" ({note})" if note else "")
    record(uow, n, "sending", provider=provider, detail=detail)
    uow.commit()
    return True


def earlier_attempt(
    n: Notification, person: Person, uow: UnitOfWork, sender: Sender
) -> Outcome | None:
    """Did a provider already tried take ``n``? An outcome when this run ends here (found:
    sent; look-up failed or not yet settled: wait); None when it is safe to send.

    The look-ups are network calls: the transaction that read ``n`` ends first (nothing
    was written; what follows is conditional on what was read)."""
    uow.session.commit()
    now = uow.now()
    if n.channel == "email":
        mail = OutgoingEmail(str(n.id), person.email or "", n.to_masked or "", n.kind, "", "")
        try:
            found = sender.email.find(mail)
        except ProviderError as exc:
            return _ask_again(n, uow, sender, sender.email.name, exc)
        if found is not None:
            return sent(n, uow, sender, sender.email.name, found, detail="reconciled")
        return None
    lookup = OutgoingSms(str(n.id), person.phone or "", n.to_masked or "", n.kind, "", {}, "", 0)
    by_name = {p.name: p for p in sender.providers}
    settled = now
    for name in reversed(list(dict.fromkeys(n.tried or []))):
        provider = by_name.get(name)
        if provider is None:
            continue
        try:
            ref = provider.find(lookup, n.created_at)
        except ProviderError as exc:
            return _ask_again(n, uow, sender, name, exc)
        if ref is not None:
            return sent(n, uow, sender, name, ref, detail="reconciled")
        if n.attempted_at is not None:
            settled = max(settled, n.attempted_at + provider.settle_after)
    if settled > now:
        names = ", ".join(dict.fromkeys(n.tried or []))
        return hold(
            uow,
            n,
            settled,
            status=n.status,
            detail=f"not listed by {names} yet: asking again before resending",
            retry=True,
        )
    return None


def _ask_again(
    n: Notification, uow: UnitOfWork, sender: Sender, provider: str, exc: ProviderError
) -> Outcome:
    """The look-up failed: nothing is sent until a provider can be asked again."""
    until = uow.now() + timedelta(seconds=policy.backoff(sender.rules, max(n.attempts, 1)))
    return hold(
        uow,
        n,
        until,
        status=n.status,
        error=f"look-up at {provider}: {exc}",
        detail="provider look-up failed: asking again before resending",
        retry=True,
    )


# --- outcomes --------------------------------------------------------------------------------


def hold(
    uow: UnitOfWork,
    n: Notification,
    until: datetime,
    *,
    status: str = "deferred",
    detail: str | None = None,
    error: str | None = None,
    retry: bool = False,
    count_attempt: bool = False,
) -> Outcome:
    """Keep a waiting message until ``until``: ``deferred`` (quiet hours, provider limits;
    the sweep hands it over when due), or with ``retry`` a short wait the task itself comes
    back after (backoff, a provider's look-up settling)."""
    values: dict[str, Any] = {"due_at": until, "dispatched_at": until if retry else None}
    if error is not None:
        values["error"] = error[:300]
    if count_attempt:
        values["attempts"] = n.attempts + 1
    if not move(uow, n, status, **values):
        return BUSY
    record(uow, n, "retry" if retry else status, error=error, detail=detail)
    uow.commit()
    if not retry:
        return Outcome(status)
    return Outcome("retry", retry_in=max((until - uow.now()).total_seconds(), 0.0))


def sent(
    n: Notification,
    uow: UnitOfWork,
    sender: Sender,
    provider: str,
    ref: str,
    *,
    segments: int | None = None,
    detail: str | None = None,
    healthy: bool = False,
) -> Outcome:
    """The provider took it: ``sent``, with the provider and its reference; ``healthy``
    also resets the provider's failure count (failover)."""
    values: dict[str, Any] = {
        "provider": provider,
        "provider_ref": ref[:100],
        "sent_at": uow.now(),
        "error": None,
        "dispatched_at": None,
    }
    if segments is not None:
        values["segments"] = segments
    if not move(uow, n, "sent", **values):
        return BUSY
    record(uow, n, "sent", provider=provider, reference=ref[:100], detail=detail)
    emit_status(n, uow, sender.district, NotificationSent)
    if healthy:  # last: every sent message writes this row, so hold it only until commit
        health.provider_ok(uow, provider)
    uow.commit()
    return Outcome("reconciled" if detail == "reconciled" else "sent")


def finish(
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
    if not move(uow, n, status, error=error[:300] if error else None, dispatched_at=None):
        return BUSY
    record(uow, n, status, provider=provider, error=error, detail=detail)
    if status == "failed":
        emit_status(n, uow, sender.district, NotificationFailed)
    uow.commit()
    return Outcome(status)


def failed_attempt(
    n: Notification,
    uow: UnitOfWork,
    sender: Sender,
    provider: str,
    exc: Exception,
    *,
    permanent: bool,
) -> Outcome:
    """The call failed: ``failed`` at once when retrying cannot help or the attempts are
    spent; otherwise back to ``queued``, due after the backoff (the task retries then). A
    transient failure counts against the provider (failover)."""
    error = error_line(exc)[:300]
    then = policy.after_failure(n.attempts, permanent=permanent, now=uow.now(), rules=sender.rules)
    final = isinstance(then, policy.Skip)
    retry_at: dict[str, Any] = {}
    if isinstance(then, policy.Retry):
        retry_at = {"due_at": then.until, "dispatched_at": then.until}
    if not move(uow, n, "failed" if final else "queued", error=error, **retry_at):
        return BUSY
    if not permanent:
        health.provider_failed(uow, provider, error, sender.rules)
    if isinstance(then, policy.Skip):
        record(uow, n, "failed", provider=provider, error=error)
        emit_status(n, uow, sender.district, NotificationFailed)
        uow.commit()
        return Outcome("failed")
    record(uow, n, "retry", provider=provider, error=error, detail=f"attempt {n.attempts}")
    uow.commit()
    return Outcome("retry", retry_in=(then.until - uow.now()).total_seconds())


# --- the daily cap's digest -------------------------------------------------------------------


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
    another task changed ``n`` — or the digest — since it was read. A message over the cap
    is not lost: it is ``suppressed`` with ``merged_into`` the digest."""
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


def outgoing_sms(
    n: Notification, person: Person, rendered: RenderedSms, provider: str
) -> OutgoingSms:
    """What goes to ``provider`` for ``n``: its rendered text and that provider's template
    code, to the person's number (and how it is shown masked)."""
    return OutgoingSms(
        out_id=str(n.id),
        phone=person.phone or "",
        phone_masked=masked(person, "sms") or "",
        kind=n.kind,
        template_code=rendered.template_code.get(provider, ""),
        params=rendered.params,
        text=rendered.text,
        segments=rendered.segments,
    )
