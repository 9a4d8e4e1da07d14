"""What callers ask reporting to do: one small type per use case, each saying what handling
it returns, handled by the table in :mod:`services.reporting.handlers`. The routes, the
Celery tasks (fired by the scheduler) and ``servicemonth report …`` only build these. No
logic here."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from services.reporting.downloads import KeptFile
from services.reporting.schemas import SubscriptionIn, SubscriptionOut
from shared.auth import Principal
from shared.messagebus import Command

if TYPE_CHECKING:  # drawing libraries load only when a report is built
    from services.reporting.builds import Built  # noqa: F401 (named in RunReport's base)

# --- subscriptions and their reports -----------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Subscribe(Command[SubscriptionOut]):
    """订阅定期报告: a leader subscribes to a scope's reports (contact sealed, shown masked)."""

    principal: Principal
    request: SubscriptionIn


@dataclass(frozen=True, kw_only=True)
class SubscriptionTick(Command[dict[str, int]]):
    """The scheduler's sweep: claim the report slots that are due, retry and reclaim runs,
    start their builds; the counts of what it did (those that are not 0)."""

    holder: str  # who claims (host:pid, or ``ops``)


@dataclass(frozen=True, kw_only=True)
class BuildReport(Command[str]):
    """Build one claimed run (the Celery task): ``done``, ``retry``, ``failed``, or
    ``not-ours`` when another attempt owns it now."""

    run_id: uuid.UUID
    attempt: int


@dataclass(frozen=True, kw_only=True)
class RunReport(Command["Built"]):
    """Build one report now, without a subscription (``servicemonth report run``); the
    period defaults to the campaign start until now."""

    scope: str
    start: datetime | None = None
    end: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class DownloadReportFile(Command[KeptFile]):
    """One file of a finished report in the caller's scope; the download is recorded."""

    principal: Principal
    report_id: uuid.UUID
    name: str


# --- read models -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TakeSnapshots(Command[int]):
    """The daily snapshots of every finished campaign day not yet taken; how many."""

    now: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class RebuildReadModels(Command[int]):
    """Empty the projections and replay the event log into them; how many events.
    ``progress`` is told how many more were replayed after each batch."""

    progress: Callable[[int], Any] | None = None
