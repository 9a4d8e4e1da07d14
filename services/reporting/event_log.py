"""Reporting's event log: every envelope it applies, append-only, the source of a rebuild
(:mod:`services.reporting.rebuild`). Only the events a projection reads are logged
(:data:`services.reporting.replay.FOLDS`)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence

from sqlalchemy import insert

from services.reporting.models import EventLogEntry
from shared.db import UnitOfWork
from shared.events import Envelope, Event


def log_events(items: Sequence[tuple[Event, Envelope]], uow: UnitOfWork) -> None:
    """Append the envelopes to the event log in their order (one statement), in the same
    transaction as their effects.

    Sealed contacts are left out (minimum necessary): no projection reads them."""
    rows = []
    for event, envelope in items:
        member_id = getattr(event, "member_id", None)
        body = envelope.model_dump(mode="json")
        for sealed in ("contact", "recipient"):
            if body["payload"].get(sealed) is not None:
                body["payload"][sealed] = None
        rows.append(
            {
                "event_id": str(envelope.id),
                "type": envelope.type,
                "occurred_at": envelope.occurred_at,
                "member_id": member_id if isinstance(member_id, uuid.UUID) else None,
                "body": json.dumps(body, ensure_ascii=False),
            }
        )
    if rows:
        uow.session.execute(insert(EventLogEntry), rows)
