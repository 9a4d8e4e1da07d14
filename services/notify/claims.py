"""Who may call the provider for a message, and what an earlier attempt did.

The claim (:func:`claim`) is one conditional UPDATE ``queued|deferred → sending`` committed
before the call, so of two tasks only one calls. A message found ``sending`` belongs to the
task that claimed it for :data:`STRANDED_SENDING`; only after that is its worker presumed
dead and the message reopened (:func:`reopen`). Before any attempt after the first, the
providers already tried are asked whether they took the message after all
(:func:`earlier_attempt`): found → ``sent``; the look-up failing → wait and ask again;
not found → sent again only once each provider's look-up can have listed the earlier
attempt (its ``settle_after``: Tencent lists receipts, which lag).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from services.notify.channels.base import OutgoingEmail, OutgoingSms, ProviderError
from services.notify.messages import record
from services.notify.models import Notification
from services.notify.outcomes import Outcome, backoff, hold, move, sent
from services.notify.recipients import Person
from shared.db import UnitOfWork

if TYPE_CHECKING:
    from services.notify.sending import Sender

#: How long a message may sit ``sending`` before its worker is presumed dead (a provider
#: call times out in seconds). Until then a second task leaves it alone.
STRANDED_SENDING = timedelta(minutes=2)


def stranded(n: Notification, now: datetime) -> bool:
    return n.attempted_at is None or n.attempted_at < now - STRANDED_SENDING


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
    until = uow.now() + timedelta(seconds=backoff(sender.rules, max(n.attempts, 1)))
    return hold(
        uow,
        n,
        until,
        status=n.status,
        error=f"look-up at {provider}: {exc}",
        detail="provider look-up failed: asking again before resending",
        retry=True,
    )
