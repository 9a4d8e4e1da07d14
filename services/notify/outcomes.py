"""Every status a send task writes, and how a run of it ends.

Each write is one conditional UPDATE naming the status and the attempt count the task read
(:func:`move`). If another task changed the message meanwhile — claimed it, merged it into
a digest, found it sent — nothing is written, the transaction is rolled back and the task
answers ``busy``. So a message is never both sent and merged or opted out, and two tasks
for one message (normal: the dispatch after commit, a retry, the sweep) send it once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import update
from sqlalchemy.orm.attributes import set_committed_value

from services.notify.failover import provider_failed, provider_ok
from services.notify.messages import record
from services.notify.models import Notification
from services.notify.rules import Rules
from shared.db import UnitOfWork
from shared.events import NotificationChanged, NotificationFailed, NotificationSent
from shared.pii import error_line

if TYPE_CHECKING:
    from services.notify.sending import Sender

#: The longest wait between two attempts of one message (seconds).
MAX_BACKOFF = 300.0


@dataclass(frozen=True)
class Outcome:
    """What one run of the send task did; ``retry_in`` asks the task to run again then."""

    status: str
    retry_in: float | None = None


BUSY = Outcome("busy")
"""Another task has the message (or changed it under us): this run does nothing."""


def backoff(rules: Rules, attempts: int) -> float:
    """Seconds before the next try after ``attempts`` attempts: doubling, capped."""
    return min(rules.retry_delay * 2.0 ** max(attempts - 1, 0), MAX_BACKOFF)


def move(
    uow: UnitOfWork,
    n: Notification,
    status: str,
    *,
    expect: str | None = None,
    rollback: bool = True,
    **values: Any,
) -> bool:
    """``n``'s status becomes ``status`` (with ``values``) only if it is still ``expect``
    (default: the status read) at the attempt count read; False otherwise, after rolling
    the transaction back (unless ``rollback`` is False: nothing was written either way)."""
    done = uow.session.execute(
        update(Notification)
        .where(
            Notification.id == n.id,
            Notification.status == (expect or n.status),
            Notification.attempts == n.attempts,
        )
        .values(status=status, **values)
        .execution_options(synchronize_session=False)
    )
    if not done.rowcount:  # type: ignore[attr-defined]
        if rollback:
            uow.session.rollback()
        return False
    for key, value in {"status": status, **values}.items():
        set_committed_value(n, key, value)  # in step with the row, without a second UPDATE
    return True


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
        provider_ok(uow, provider)
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
    final = permanent or n.attempts >= sender.rules.max_attempts
    until = uow.now() + timedelta(seconds=backoff(sender.rules, n.attempts))
    retry_at: dict[str, Any] = {} if final else {"due_at": until, "dispatched_at": until}
    if not move(uow, n, "failed" if final else "queued", error=error, **retry_at):
        return BUSY
    if not permanent:
        provider_failed(uow, provider, error, sender.rules)
    if final:
        record(uow, n, "failed", provider=provider, error=error)
        emit_status(n, uow, sender.district, NotificationFailed)
        uow.commit()
        return Outcome("failed")
    record(uow, n, "retry", provider=provider, error=error, detail=f"attempt {n.attempts}")
    uow.commit()
    return Outcome("retry", retry_in=(until - uow.now()).total_seconds())


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
