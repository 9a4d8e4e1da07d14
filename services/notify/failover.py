"""Which SMS provider takes a message: configured order, failover after repeated transient
failures (a cool-down per provider, kept in ``provider_health``), and the providers'
per-number limits, counted from our own history before any call."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select

from services.notify.channels.base import Limit, SmsProvider
from services.notify.messages import SENT_LIKE
from services.notify.models import Notification, ProviderHealth
from services.notify.rules import Rules
from shared.db import UnitOfWork

if TYPE_CHECKING:
    from services.notify.sending import Sender


def _health(uow: UnitOfWork, names: list[str]) -> dict[str, ProviderHealth]:
    rows = uow.session.scalars(select(ProviderHealth).where(ProviderHealth.name.in_(names)))
    return {row.name: row for row in rows}


def provider_order(n: Notification, uow: UnitOfWork, sender: Sender) -> list[SmsProvider]:
    """Healthy providers first, in configured order; the ones that already failed this
    message, and those cooling down after repeated failures, last."""
    now = uow.now()
    health = _health(uow, [p.name for p in sender.providers])
    tried = list(n.tried or [])

    def rank(index_provider: tuple[int, SmsProvider]) -> tuple[int, int, int]:
        index, provider = index_provider
        row = health.get(provider.name)
        cooling = row is not None and row.skip_until is not None and row.skip_until > now
        failed_here = tried.count(provider.name)
        return (int(cooling), failed_here, index)

    return [p for _, p in sorted(enumerate(sender.providers), key=rank)]


def limit_free_at(n: Notification, provider: SmsProvider, uow: UnitOfWork) -> datetime | None:
    """None when ``provider`` may take another SMS to this number now; else when it may."""
    if n.phone_hmac is None:
        return None
    now = uow.now()
    limits: tuple[Limit, ...] = tuple(getattr(provider, "limits", ()) or ())
    for limit in limits:
        window: timedelta = limit.window
        same = [
            Notification.phone_hmac == n.phone_hmac,
            Notification.provider == provider.name,
            Notification.status.in_(SENT_LIKE),
            Notification.attempted_at > now - window,
            Notification.id != n.id,
        ]
        if "template" in limit.per or "content" in limit.per:
            same.append(Notification.kind == n.kind)
        times = list(
            uow.session.scalars(
                select(Notification.attempted_at)
                .where(*same)
                .order_by(Notification.attempted_at.desc())
                .limit(limit.count)
            )
        )
        if len(times) >= limit.count:
            oldest: datetime = min(t for t in times if t is not None)
            return oldest + window
    return None


def provider_ok(uow: UnitOfWork, name: str) -> None:
    row = _health_row(uow, name)
    row.consecutive_failures = 0
    row.skip_until = None
    row.sent += 1


def provider_failed(uow: UnitOfWork, name: str, error: str, rules: Rules) -> None:
    row = _health_row(uow, name)
    row.consecutive_failures += 1
    row.failed += 1
    row.last_error = error
    if row.consecutive_failures >= rules.failover_after:
        row.skip_until = uow.now() + rules.failover_cooldown


def _health_row(uow: UnitOfWork, name: str) -> ProviderHealth:
    row = uow.session.scalar(
        select(ProviderHealth).where(ProviderHealth.name == name).with_for_update()
    )
    if row is None:
        row = ProviderHealth(name=name, consecutive_failures=0, sent=0, failed=0)
        uow.session.add(row)
        uow.session.flush()
    return row
