"""Pairing's Celery app: its own background work on its own queue.

Tasks are thin shells that call a use case; they are idempotent (a sweep run twice finds
nothing left the second time), since they are acknowledged late.
"""

from __future__ import annotations

from services.pairing import runtime, wishes
from shared.workers import make_celery

app = make_celery("pairing")

SWEEP_TASK = "pairing.sweep_wishes"


@app.task(name=SWEEP_TASK)  # type: ignore[untyped-decorator]
def sweep_wishes() -> dict[str, int]:
    """Expire claims past their time and wishes past their deadline (uses the runtime clock)."""
    return wishes.sweep_all(runtime())
