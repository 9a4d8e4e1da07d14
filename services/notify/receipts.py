"""Delivery receipts: a provider says a message arrived (or did not).

A receipt touches only a message that provider took (``provider``): a receipt that comes
through Tencent's callback cannot mark delivered — or failed — a message Aliyun sent. It
moves ``sending|sent`` to ``delivered`` or ``failed`` with one conditional write, so it is
idempotent and never moves a status backwards.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from services.notify.messages import emit_status, move, record
from services.notify.models import Notification
from shared.db import UnitOfWork
from shared.events import NotificationDelivered, NotificationFailed

#: The statuses a receipt may move on from.
RECEIPTABLE = ("sending", "sent")


@dataclass(frozen=True)
class Receipt:
    """A provider's delivery report for one message."""

    reference: str | None
    out_id: str | None
    delivered: bool
    error: str | None = None


def parse_receipt(item: dict[str, Any]) -> Receipt:
    """An Aliyun SmsReport (``biz_id``, ``out_id``, ``success``, ``err_code``) or a Tencent
    status report (``sid``, ``report_status``, ``errmsg``)."""
    if "report_status" in item or "sid" in item:
        ok = str(item.get("report_status", "")).upper() == "SUCCESS"
        ext = item.get("ext")
        return Receipt(
            reference=str(item.get("sid") or "") or None,
            out_id=str(ext.get("out_id") or "") or None if isinstance(ext, dict) else None,
            delivered=ok,
            error=None if ok else str(item.get("errmsg") or item.get("description") or ""),
        )
    success = item.get("success")
    ok = success is True or str(success).lower() == "true"
    return Receipt(
        reference=str(item.get("biz_id") or "") or None,
        out_id=str(item.get("out_id") or "") or None,
        delivered=ok,
        error=None if ok else str(item.get("err_code") or item.get("err_msg") or ""),
    )


def _message(uow: UnitOfWork, provider: str, receipt: Receipt) -> Notification | None:
    n = None
    if receipt.out_id:
        try:
            n = uow.session.get(Notification, uuid.UUID(receipt.out_id), with_for_update=True)
        except ValueError:
            n = None
    if n is None and receipt.reference:
        n = uow.session.scalar(
            select(Notification)
            .where(
                Notification.provider_ref == receipt.reference, Notification.provider == provider
            )
            .with_for_update()
        )
    return n


def apply_receipt(uow: UnitOfWork, provider: str, receipt: Receipt, district: str) -> str:
    """Record a delivery report; ``unknown`` for a message this provider did not take."""
    n = _message(uow, provider, receipt)
    if n is None or n.provider != provider:
        return "unknown"
    if n.status not in RECEIPTABLE:
        return "unchanged"  # delivered and failed are final; a duplicate report changes nothing
    status = "delivered" if receipt.delivered else "failed"
    values: dict[str, Any] = {}
    if receipt.reference and not n.provider_ref:
        values["provider_ref"] = receipt.reference[:100]
    if receipt.delivered:
        values["delivered_at"] = uow.now()
    else:
        values["error"] = (receipt.error or "not delivered")[:300]
    if not move(uow, n, status, rollback=False, **values):
        return "unchanged"  # it changed since it was read
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
