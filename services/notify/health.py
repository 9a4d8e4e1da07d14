"""Provider health (``provider_health``): how each SMS provider has been doing, read before
a send (failover order: :func:`services.notify.policy.provider_order`) and written after
each call — a failure count, and a cool-down after repeated transient failures."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import case, insert, literal, select, update
from sqlalchemy.exc import IntegrityError

from services.notify.models import ProviderHealth
from services.notify.rules import Rules
from shared.db import UnitOfWork, UTCDateTime


def cooling_until(uow: UnitOfWork, names: list[str]) -> dict[str, datetime | None]:
    """Each provider's ``skip_until`` as stored now (columns, not objects a session could
    hold on to from an earlier transaction)."""
    rows = uow.session.execute(
        select(ProviderHealth.name, ProviderHealth.skip_until).where(ProviderHealth.name.in_(names))
    )
    return {name: until for name, until in rows}


def provider_ok(uow: UnitOfWork, name: str, count: int = 1) -> None:
    """The provider took ``count`` messages: its failure count starts again."""
    _write(
        uow,
        name,
        {"consecutive_failures": 0, "skip_until": None, "sent": ProviderHealth.sent + count},
        {"sent": count},
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
