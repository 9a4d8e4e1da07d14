"""The send policy: what to do with one waiting message now, from plain facts.

:func:`decide` takes the message, how its recipient can be reached now, the SMS recently
gone to them, the SMS providers (their limits and health), the rules and the time, and
answers a :data:`Decision`: send now by SMS through provider X or by e-mail; wait until T
(quiet hours, a provider's per-number limit); merge into tomorrow's digest (the daily
cap); skip with a final status and the reason (no contact, channel refused, every
provider's limit reached); or first ask the providers already tried whether an earlier,
ambiguous attempt went through. No database, no network, no clock: the facts come in,
the decision goes out. :mod:`services.notify.sending` gathers the facts and carries the
decision out (the claim, the provider call, the outcome).

In order (docs/domain.md, "SMS and e-mail"):

1. not due yet → leave it (:class:`NotDue`); recipient gone → ``failed``;
2. tried before → ask the providers first (:class:`AskProviders`), never send twice;
3. the channel the recipient accepts now: the queued one while accepted, the other only
   when the queued one has no address; none → ``opted_out``; e-mail → :class:`SendEmail`;
4. SMS: quiet hours hold it until they end (``urgent`` goes anyway);
5. the recipient's daily SMS cap (urgent or not) → :class:`MergeIntoDigest`;
6. the first provider, in failover order (healthy ones first, in configured order; the
   ones that already failed this message and those cooling down last), whose per-number
   limits allow another SMS now → :class:`SendSms`; none → wait for the soonest that frees
   up within :data:`LIMIT_WAIT`, else ``rate_limited``.

The same module says what follows a failed call (:func:`after_failure`), how long to wait
between attempts (:func:`backoff`) and when a ``sending`` message is stranded.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from services.notify.channels.base import Limit
from services.notify.rules import Rules, day_bounds, local_day

#: Provider limits that free up within this wait are waited for; beyond it, rate_limited.
LIMIT_WAIT = timedelta(hours=1)
#: How long a message may sit ``sending`` before its worker is presumed dead (a provider
#: call times out in seconds). Until then a second task leaves it alone.
STRANDED_SENDING = timedelta(minutes=2)
#: The longest wait between two attempts of one message (seconds).
MAX_BACKOFF = 300.0


# --- the facts ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """What the rules read of the message (a ``notifications`` row)."""

    kind: str
    channel: str  # the channel it was queued for: sms | email
    recipient_kind: str  # member | staff | sealed
    member_id: uuid.UUID | None = None
    staff_id: uuid.UUID | None = None
    phone_hmac: str | None = None
    urgent: bool = False
    due_at: datetime | None = None
    tried: tuple[str, ...] = ()
    attempts: int = 0


@dataclass(frozen=True)
class Reachable:
    """How the recipient can be reached now (their contact opened; None: gone)."""

    phone: bool
    email: bool
    sms_enabled: bool = True
    email_enabled: bool = True

    @property
    def emailable(self) -> bool:
        return self.email and self.email_enabled


@dataclass(frozen=True)
class RecentSms:
    """An SMS that went (or is going) out lately, as the daily cap and the providers'
    per-number limits count it."""

    member_id: uuid.UUID | None
    staff_id: uuid.UUID | None
    phone_hmac: str | None
    channel: str
    provider: str | None
    kind: str
    attempted_at: datetime


@dataclass(frozen=True)
class Provider:
    """An SMS provider as the rules see it: its name, its documented per-number limits and,
    from ``provider_health``, until when it cools down after repeated failures."""

    name: str
    limits: tuple[Limit, ...] = ()
    cooling_until: datetime | None = None


@dataclass(frozen=True)
class Facts:
    """Everything :func:`decide` reads. ``recent`` holds what :func:`counted_since` asks
    for; ``asked`` says the providers already tried were asked (and had not taken it)."""

    message: Message
    recipient: Reachable | None
    now: datetime
    rules: Rules = field(default_factory=Rules)
    providers: Sequence[Provider] = ()
    recent: Sequence[RecentSms] = ()
    asked: bool = False


# --- the decisions -------------------------------------------------------------------------


@dataclass(frozen=True)
class NotDue:
    """Not due yet: leave it as it is (the sweep hands it over when it is)."""


@dataclass(frozen=True)
class AskProviders:
    """An earlier attempt may have gone through: ask the providers tried before anything."""


@dataclass(frozen=True)
class SendSms:
    """Send it now by SMS through ``provider``."""

    provider: str


@dataclass(frozen=True)
class SendEmail:
    """Send it now by e-mail; ``note`` says why when it was queued for SMS."""

    note: str | None = None


@dataclass(frozen=True)
class Wait:
    """Hold it (``deferred``) until ``until``; ``detail`` says why."""

    until: datetime
    detail: str


@dataclass(frozen=True)
class MergeIntoDigest:
    """Over the daily SMS cap: fold it into the recipient's digest of tomorrow morning."""


@dataclass(frozen=True)
class Skip:
    """Never send it: a final ``status`` with the reason (``error`` or ``detail``)."""

    status: Literal["failed", "opted_out", "rate_limited"]
    error: str | None = None
    detail: str | None = None


@dataclass(frozen=True)
class Retry:
    """After a failed attempt: try again at ``until``."""

    until: datetime


Decision = NotDue | AskProviders | SendSms | SendEmail | Wait | MergeIntoDigest | Skip


# --- the policy ------------------------------------------------------------------------------


def decide(facts: Facts) -> Decision:
    """What to do with a waiting message now (see the module's docstring for the order)."""
    n, person, now, rules = facts.message, facts.recipient, facts.now, facts.rules
    if n.due_at is not None and n.due_at > now:
        return NotDue()
    if person is None:
        return Skip("failed", error="no contact for the recipient")
    if n.tried and not facts.asked:
        return AskProviders()
    channel = channel_now(n.channel, person)
    if channel is None:
        return Skip("opted_out", detail=f"{n.channel} refused")
    if channel == "email":
        return SendEmail(None if n.channel == "email" else f"by e-mail: {n.channel} unavailable")
    if not n.urgent and (until := rules.quiet_until(now)) is not None:
        return Wait(until, f"quiet hours until {until.isoformat()}")
    if over_cap(n, facts.recent, now, rules):  # urgent or not: urgent bypasses quiet hours only
        return MergeIntoDigest()
    free_at: list[datetime] = []
    for provider in provider_order(n, facts.providers, now):
        blocked_until = limit_free_at(n, provider, facts.recent, now)
        if blocked_until is None:
            return SendSms(provider.name)
        free_at.append(blocked_until)
    if free_at and min(free_at) - now <= LIMIT_WAIT:
        soonest = min(free_at)
        return Wait(soonest, f"provider limits until {soonest.isoformat()}")
    return Skip("rate_limited", detail="every provider's limit reached")


def too_long_for_sms(person: Reachable, error: str) -> SendEmail | Skip:
    """The SMS would need more segments than allowed: by e-mail when the recipient has an
    address, else it fails."""
    if person.emailable:
        return SendEmail(f"by e-mail: {error}")
    return Skip("failed", error=error)


def channel_now(queued: str, person: Reachable) -> str | None:
    """The channel to use now: the one queued if still accepted; the other one only when
    the queued one has no address (an opted-out channel is never swapped for another)."""
    if queued == "sms":
        if not person.sms_enabled:
            return None
        if person.phone:
            return "sms"
        return "email" if person.emailable else None
    if not person.email_enabled:
        return None
    if person.email:
        return "email"
    return "sms" if person.phone and person.sms_enabled else None


# --- what the cap and the limits count --------------------------------------------------------


def cap_day(n: Message, now: datetime, rules: Rules) -> tuple[datetime, datetime] | None:
    """The campaign day whose SMS count against ``n``'s recipient's daily cap; None when
    the cap does not apply (switched off, a report subscriber, a digest)."""
    if rules.sms_daily_cap <= 0 or n.recipient_kind == "sealed" or n.kind == "digest":
        return None
    return day_bounds(local_day(now))


def limits_since(providers: Sequence[Provider], now: datetime) -> datetime | None:
    """The start of the longest per-number limit window among ``providers`` (None: none
    declares a limit)."""
    windows = [limit.window for p in providers for limit in p.limits]
    return now - max(windows) if windows else None


def counted_since(
    n: Message, providers: Sequence[Provider], now: datetime, rules: Rules
) -> tuple[tuple[datetime, datetime] | None, datetime | None]:
    """The history :data:`Facts.recent` must hold: SMS to the recipient within the cap's day
    (None: not counted), and anything to the number after the longest limit window."""
    return cap_day(n, now, rules), limits_since(providers, now)


def over_cap(n: Message, recent: Sequence[RecentSms], now: datetime, rules: Rules) -> bool:
    """True when the recipient had their ``sms_daily_cap`` SMS today (campaign day)."""
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


def provider_order(n: Message, providers: Sequence[Provider], now: datetime) -> list[Provider]:
    """Healthy providers first, in configured order; the ones that already failed this
    message, and those cooling down after repeated failures, last."""

    def rank(index_provider: tuple[int, Provider]) -> tuple[int, int, int]:
        index, provider = index_provider
        until = provider.cooling_until
        cooling = until is not None and until > now
        return (int(cooling), n.tried.count(provider.name), index)

    return [p for _, p in sorted(enumerate(providers), key=rank)]


def limit_free_at(
    n: Message, provider: Provider, recent: Sequence[RecentSms], now: datetime
) -> datetime | None:
    """None when ``provider`` may take another SMS to this number now; else when it may,
    counted from our own messages to the number through ``provider``."""
    if n.phone_hmac is None:
        return None
    for limit in provider.limits:
        by_kind = "template" in limit.per or "content" in limit.per
        times = sorted(
            (
                r.attempted_at
                for r in recent
                if r.phone_hmac == n.phone_hmac
                and r.provider == provider.name
                and r.attempted_at > now - limit.window
                and (not by_kind or r.kind == n.kind)
            ),
            reverse=True,
        )[: limit.count]
        if len(times) >= limit.count:
            return min(times) + limit.window
    return None


# --- after an attempt ----------------------------------------------------------------------


def backoff(rules: Rules, attempts: int) -> float:
    """Seconds before the next try after ``attempts`` attempts: doubling, capped."""
    return min(rules.retry_delay * 2.0 ** max(attempts - 1, 0), MAX_BACKOFF)


def after_failure(attempts: int, *, permanent: bool, now: datetime, rules: Rules) -> Retry | Skip:
    """The call failed (``attempts`` made so far): ``failed`` when retrying cannot help or
    the attempts are spent, else try again after the backoff."""
    if permanent or attempts >= rules.max_attempts:
        return Skip("failed")
    return Retry(now + timedelta(seconds=backoff(rules, attempts)))


def stranded(attempted_at: datetime | None, now: datetime) -> bool:
    """A ``sending`` message whose worker is presumed dead (see :data:`STRANDED_SENDING`)."""
    return attempted_at is None or attempted_at < now - STRANDED_SENDING
