"""Notify's events: a message reached a final status."""

from __future__ import annotations

import uuid
from typing import Literal

from shared.events.envelope import Event


class NotificationChanged(Event):
    """A message reached a final status (no contact details: kind, channel, status only)."""

    notification_id: uuid.UUID
    member_id: uuid.UUID | None = None
    kind: str
    channel: Literal["sms", "email"]
    status: str
    provider: str | None = None


class NotificationSent(NotificationChanged):
    TYPE = "notification.sent"


class NotificationDelivered(NotificationChanged):
    TYPE = "notification.delivered"


class NotificationFailed(NotificationChanged):
    TYPE = "notification.failed"
