"""A report built now, without a subscription (``servicemonth report run``, the demo)."""

from __future__ import annotations

import os
import uuid
from datetime import datetime
from typing import Any

from services.reporting.builds import Built, finish, produce
from services.reporting.models import ReportRun
from services.reporting.subscriptions import campaign_window
from shared.runtime import Runtime


def run_now(
    rt: Runtime,
    scope: str,
    start: datetime | None = None,
    end: datetime | None = None,
    source: Any = None,
) -> Built:
    """Build one report now and keep it (listed by ``GET /reports``); nobody is told.

    The period defaults to the campaign start until now (at most the close).
    """
    first, close = campaign_window(rt.settings)
    with rt.uow() as uow:
        now = uow.now()
        start = start or first
        end = end or min(now, close)
        run = ReportRun(
            id=uuid.uuid4(),
            subscription_id=None,
            scope=scope,
            period_start=start,
            period_end=end,
            slot=now,
            status="working",
            attempts=1,
            holder=f"on-demand:{os.getpid()}",
            claimed_at=now,
        )
        uow.session.add(run)
        uow.commit()
        run_id = run.id
        built = produce(uow, rt.settings, run_id, scope, start, end, {"html", "xlsx"}, source)
    finish(rt, run_id, 1, built)
    return built
