"""Delivery receipts: a provider says a message arrived (or did not)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select

from services.notify.messages import record
from services.notify.models import Notification
from services.notify.sending import emit_status
from shared.db import UnitOfWork
from shared.events import NotificationDelivered, NotificationFailed


@dataclass(frozen=True)
class Receipt:
    """A provider's delivery report for one message."""

    reference: str | None
    out_id: str | None
    delivered: bool
    error: str | None = None


def apply_receipt(uow: UnitOfWork, provider: str, receipt: Receipt, district: str) -> str:
    """Record a delivery report; idempotent, and never moves a status backwards."""
    n = None
    if receipt.out_id:
        try:
            n = uow.session.get(Notification, uuid.UUID(receipt.out_id))
        except ValueError:
            n = None
    if n is None and receipt.reference:
        n = uow.session.scalar(
            select(Notification).where(
                Notification.provider_ref == receipt.reference, Notification.provider == provider
            )
        )
    if n is None:
        return "unknown"
    if n.status not in ("sending", "sent"):
        return "unchanged"  # delivered and failed are final; a duplicate report changes nothing
    status = "delivered" if receipt.delivered else "failed"
    n.status = status
    if receipt.reference and not n.provider_ref:
        n.provider_ref = receipt.reference[:100]
    if receipt.delivered:
        n.delivered_at = uow.now()
    else:
        n.error = (receipt.error or "not delivered")[:300]
    record(
        uow,
        n,
        status,
        provider=provider,
        reference=receipt.reference,
        error=n.error if not receipt.delivered else None,
        detail="receipt",
    )
    emit_status(
        n, uow, district, NotificationDelivered if receipt.delivered else NotificationFailed
    )
    return status
