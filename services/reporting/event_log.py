"""Reporting's event log: every envelope it applies, append-only, the source of a rebuild
(:mod:`services.reporting.rebuild`). Only the events a projection reads are logged
(:data:`services.reporting.handlers.PROJECTIONS`)."""

from __future__ import annotations

import json
import uuid

from services.reporting.models import EventLogEntry
from shared.db import UnitOfWork
from shared.events import Envelope, Event


def log_event(event: Event, envelope: Envelope, uow: UnitOfWork) -> None:
    """Append the envelope to the event log, in the same transaction as its effects.

    Sealed contacts are left out (minimum necessary): no projection reads them."""
    member_id = getattr(event, "member_id", None)
    body = envelope.model_dump(mode="json")
    for sealed in ("contact", "recipient"):
        if body["payload"].get(sealed) is not None:
            body["payload"][sealed] = None
    uow.session.add(
        EventLogEntry(
            event_id=str(envelope.id),
            type=envelope.type,
            occurred_at=envelope.occurred_at,
            member_id=member_id if isinstance(member_id, uuid.UUID) else None,
            body=json.dumps(body, ensure_ascii=False),
        )
    )
    uow.session.flush()
