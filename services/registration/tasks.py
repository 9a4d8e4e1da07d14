"""Registration's Celery app: its own background work on its own queue.

Tasks are thin shells (decode the arguments, hand a command to the bus) and idempotent,
since they are acknowledged late and a dead worker's task is delivered again.
"""

from __future__ import annotations

import uuid

from services.registration.bootstrap import bus
from services.registration.commands import ImportRoster
from services.registration.rosters import IMPORT_TASK
from shared.workers import make_celery

app = make_celery("registration")


@app.task(name=IMPORT_TASK)  # type: ignore[untyped-decorator]
def import_roster(roster_id: str) -> str:
    """花名册导入 — a roster already done does nothing; a half-done one continues."""
    return bus().handle(ImportRoster(roster_id=uuid.UUID(roster_id)))
