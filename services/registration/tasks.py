"""Registration's Celery app: its own background work on its own queue.

Tasks are thin shells (decode, call a handler) and idempotent, since they are acknowledged
late and a dead worker's task is delivered again.
"""

from __future__ import annotations

import logging
import uuid

from sqlalchemy.exc import OperationalError

from services.registration import rosters, runtime
from shared.http import NotFound
from shared.workers import make_celery

log = logging.getLogger(__name__)

app = make_celery("registration")


@app.task(  # type: ignore[untyped-decorator]
    name=rosters.IMPORT_TASK, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5
)
def import_roster(roster_id: str) -> str:
    """花名册导入 — a roster already done does nothing; a half-done one continues."""
    rt = runtime()
    try:
        return rosters.import_roster(uuid.UUID(roster_id), rt.uow, rt.sealer).status
    except NotFound:
        log.warning("roster %s is gone; nothing to import", roster_id)
        return "missing"
