"""A report run's row and what happens around it: the policy (stale timeout, grace
period, attempts, backoff), the conditional moves between states, and ``report.generated``
telling the subscriber — shared by the tick (:mod:`.runs`) and the build (:mod:`.builds`).

``status``: working → done | retry → working … | failed; skipped for a slot missed past the
grace period. Every move is a conditional update on the state the mover saw, so of two
movers only one wins.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import update

from services.reporting.models import ReportRun, Subscription
from services.reporting.subscriptions import recipient
from shared.config import Settings
from shared.db import UnitOfWork
from shared.events import ReportFile, ReportGenerated


@dataclass(frozen=True)
class Policy:
    """How long a claim lives, how far back a missed slot is still worth a report, retries."""

    stale: timedelta = timedelta(seconds=600)
    grace: timedelta = timedelta(hours=24)
    max_attempts: int = 3
    backoff: timedelta = timedelta(seconds=60)

    @classmethod
    def of(cls, settings: Settings) -> Policy:
        own = settings.reporting
        return cls(stale=own.stale, grace=own.grace, max_attempts=own.max_attempts)

    def retry_after(self, attempt: int) -> timedelta:
        return timedelta(seconds=self.backoff.total_seconds() * 2 ** max(attempt - 1, 0))


def move(uow: UnitOfWork, guard: tuple[Any, ...], **values: Any) -> bool:
    """A conditional update of one run; True when this caller's condition still held."""
    done = uow.session.execute(
        update(ReportRun)
        .where(*guard)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(done.rowcount)  # type: ignore[attr-defined]


def tell_failure(uow: UnitOfWork, district: str, run_id: uuid.UUID) -> None:
    """The subscriber hears that this period's report failed, instead of nothing."""
    headline = "本期定期报告生成失败，技术人员正在处理，恢复后将补发。"
    announce(
        uow, district, run_id, "在职党员进社区服务月定期报告（生成失败）", headline, [], failed=True
    )


def announce(
    uow: UnitOfWork,
    district: str,
    run_id: uuid.UUID,
    title: str,
    headline: str,
    files: list[ReportFile],
    *,
    failed: bool,
) -> None:
    """``report.generated`` for a subscriber (an on-demand run has nobody to tell)."""
    run = uow.session.get(ReportRun, run_id)
    assert run is not None
    sub = uow.session.get(Subscription, run.subscription_id) if run.subscription_id else None
    if sub is None:
        return
    event = ReportGenerated(
        report_id=run.id,
        subscription_id=sub.id,
        scope=run.scope,
        period_start=run.period_start,
        period_end=run.period_end,
        title=title,
        headline=headline,
        files=files,
        recipient=recipient(sub),
        channels=[c for c in sub.channels.split(",") if c in ("sms", "email")],
        failed=failed,
    )
    uow.emit(event, district=district)
