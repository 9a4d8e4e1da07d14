"""Which SMS provider takes a message: configured order, failover after repeated transient
failures (a cool-down per provider, kept in ``provider_health``), and the providers'
per-number limits, counted from our own history before any call."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, insert, literal, select, update
from sqlalchemy.exc import IntegrityError

from services.notify.channels.base import Limit, SmsProvider
from services.notify.messages import RecentSms
from services.notify.models import Notification, ProviderHealth
from services.notify.rules import Rules
from shared.db import UnitOfWork, UTCDateTime

if TYPE_CHECKING:
    from services.notify.sending import Sender


def _cooling_until(uow: UnitOfWork, names: list[str]) -> dict[str, datetime | None]:
    """Each provider's ``skip_until`` as stored now (columns, not objects a session could
    hold on to from an earlier transaction)."""
    rows = uow.session.execute(
        select(ProviderHealth.name, ProviderHealth.skip_until).where(ProviderHealth.name.in_(names))
    )
    return {name: until for name, until in rows}


def provider_order(n: Notification, uow: UnitOfWork, sender: Sender) -> list[SmsProvider]:
    """Healthy providers first, in configured order; the ones that already failed this
    message, and those cooling down after repeated failures, last."""
    if len(sender.providers) < 2:  # nothing to reorder: no need to read their health
        return list(sender.providers)
    now = uow.now()
    cooling_until = _cooling_until(uow, [p.name for p in sender.providers])
    tried = list(n.tried or [])

    def rank(index_provider: tuple[int, SmsProvider]) -> tuple[int, int, int]:
        index, provider = index_provider
        until = cooling_until.get(provider.name)
        cooling = until is not None and until > now
        failed_here = tried.count(provider.name)
        return (int(cooling), failed_here, index)

    return [p for _, p in sorted(enumerate(sender.providers), key=rank)]


def _limits(provider: SmsProvider) -> tuple[Limit, ...]:
    return tuple(getattr(provider, "limits", ()) or ())


def limits_since(providers: list[SmsProvider], now: datetime) -> datetime | None:
    """The start of the longest per-number limit window among ``providers`` (None: none
    declares a limit): the history :func:`limit_free_at` needs."""
    windows = [limit.window for p in providers for limit in _limits(p)]
    return now - max(windows) if windows else None


def limit_free_at(
    n: Notification, provider: SmsProvider, recent: list[RecentSms], now: datetime
) -> datetime | None:
    """None when ``provider`` may take another SMS to this number now; else when it may.

    Counted in ``recent`` (:func:`services.notify.messages.recent_sms` since
    :func:`limits_since`): our own messages to the number through ``provider``."""
    if n.phone_hmac is None:
        return None
    for limit in _limits(provider):
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


def provider_ok(uow: UnitOfWork, name: str) -> None:
    """The provider took a message: its failure count starts again."""
    _write(
        uow,
        name,
        {"consecutive_failures": 0, "skip_until": None, "sent": ProviderHealth.sent + 1},
        {"sent": 1},
    )


def provider_failed(uow: UnitOfWork, name: str, error: str, rules: Rules) -> None:
    """A transient failure: counted; past ``failover_after`` in a row the provider cools
    down until ``failover_cooldown`` from now."""
    failures = ProviderHealth.consecutive_failures + 1
    cool_until = uow.now() + rules.failover_cooldown
    change = {
        "consecutive_failures": failures,
        "failed": ProviderHealth.failed + 1,
        "last_error": error[:300],
        "skip_until": case(
            (failures >= rules.failover_after, literal(cool_until, UTCDateTime())),
            else_=ProviderHealth.skip_until,
        ),
    }
    first = {
        "consecutive_failures": 1,
        "failed": 1,
        "last_error": error[:300],
        "skip_until": cool_until if rules.failover_after <= 1 else None,
    }
    _write(uow, name, change, first)


def _write(uow: UnitOfWork, name: str, change: dict[str, Any], first: dict[str, Any]) -> None:
    """One UPDATE of the provider's row computed from its current values (never from a
    copy read earlier: every send writes this row, concurrently, and holds it only from
    here to the commit); its first outcome makes the row with ``first``."""
    update_row = (
        update(ProviderHealth)
        .where(ProviderHealth.name == name)
        .values(**change)
        .execution_options(synchronize_session=False)
    )
    if uow.session.execute(update_row).rowcount:  # type: ignore[attr-defined]
        return
    row = {"name": name, "consecutive_failures": 0, "sent": 0, "failed": 0, **first}
    try:
        with uow.session.begin_nested():
            uow.session.execute(insert(ProviderHealth).values(**row))
    except IntegrityError:  # a concurrent first outcome made it meanwhile
        uow.session.execute(update_row)
