"""Reporting's Celery app: its own background work on its own queue.

Tasks are thin shells (decode the arguments, hand a command to the bus) and idempotent: a
redelivered tick claims nothing twice, a redelivered build of a run no longer ``working``
at that attempt does nothing.
"""

from __future__ import annotations

import os
import socket
import uuid

from services.reporting.bootstrap import bus
from services.reporting.commands import BuildReport, SubscriptionTick, TakeSnapshots
from services.reporting.runs import BUILD_TASK, TICK_TASK
from shared.workers import make_celery

app = make_celery("reporting")

SNAPSHOT_TASK = "reporting.snapshot"
#: The sweeps the deployment's scheduler fires (task name → seconds).
SWEEPS: dict[str, float] = {TICK_TASK: 60.0, SNAPSHOT_TASK: 600.0}


@app.task(name=TICK_TASK)  # type: ignore[untyped-decorator]
def tick() -> dict[str, int]:
    """Claim the report slots that are due, retry and reclaim runs, start their builds."""
    return bus().handle(SubscriptionTick(holder=f"{socket.gethostname()}:{os.getpid()}"))


@app.task(name=SNAPSHOT_TASK)  # type: ignore[untyped-decorator]
def snapshot() -> int:
    """Take the daily snapshots of every finished campaign day not taken yet."""
    return bus().handle(TakeSnapshots())


@app.task(name=BUILD_TASK)  # type: ignore[untyped-decorator]
def build(run_id: str, attempt: int) -> str:
    """Build one claimed report run (``not-ours`` when another attempt owns it now)."""
    return bus().handle(BuildReport(run_id=uuid.UUID(run_id), attempt=attempt))
