"""What callers ask notify to do: one small type per use case, each saying what handling it
returns, handled by the table in :mod:`services.notify.handlers`. The routes, the Celery
tasks (the send task, the scheduler's reminder sweep) and the consume process only build
these. No logic here. (Messages triggered by other services' events are not commands:
the events table in :mod:`services.notify.handlers` queues them.)"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from services.notify.reminders import SweepResult
from services.notify.schemas import PreferencesOut
from services.notify.sending import Outcome
from shared.auth import Principal
from shared.messagebus import Command

# --- sending -------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SendNotification(Command[Outcome]):
    """Move one message as far as it can go now (the send task; exactly once)."""

    notification_id: uuid.UUID


@dataclass(frozen=True, kw_only=True)
class SendNotifications(Command[dict[uuid.UUID, Outcome]]):
    """Move many messages as far as they can go now, claimed and recorded per batch, the
    provider calls concurrent (the batch send task; exactly once); each one's outcome."""

    notification_ids: tuple[uuid.UUID, ...]


@dataclass(frozen=True, kw_only=True)
class SweepDueMessages(Command[int]):
    """Hand the send task every message that is due now and that no task is expected for;
    how many were handed over."""


@dataclass(frozen=True, kw_only=True)
class RunReminderSlots(Command[SweepResult]):
    """Queue every reminder slot that is due at ``now`` (the clock), each slot once;
    ``holder`` names the sweep in ``reminder_runs``."""

    now: datetime | None = None
    holder: str | None = None


# --- members -------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SetPreferences(Command[PreferencesOut]):
    """The channels a member accepts (None: as it is); queued messages are checked again
    at send."""

    principal: Principal
    member_id: uuid.UUID
    sms: bool | None = None
    email: bool | None = None


# --- provider callbacks ----------------------------------------------------------------------


R = TypeVar("R")


@dataclass(frozen=True, kw_only=True)
class _FromProvider(Command[R]):
    """Their common arguments (a base, not a command itself)."""

    provider: str
    items: list[dict[str, Any]] = field(default_factory=list)


class RecordReceipts(_FromProvider[dict[str, int]]):
    """A provider's delivery reports; how many were ``delivered``, ``failed``,
    ``unchanged`` or ``unknown``."""


class HandleReplies(_FromProvider[int]):
    """Inbound SMS a provider passes on: a stop word opts the number out; how many contacts
    stopped getting SMS."""
