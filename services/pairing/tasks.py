"""Pairing's Celery app, on its own queue (``servicemonth worker pairing`` runs it).

Its one task does the 双对接 runs staff ask for (``POST /pairings/run`` queues them); the
micro-wishes' sweep runs in the consume process (:func:`services.pairing.consumers.periodic`),
and publishing pairs the community in the request. A task only decodes its arguments,
builds a command and hands it to ``bootstrap.bus()``; it is acknowledged late and
idempotent (a run done does nothing again).
"""

from __future__ import annotations

import uuid

from services.pairing.bootstrap import bus
from services.pairing.commands import ExecutePairingRun
from services.pairing.pairings import RUN_TASK
from shared.workers import make_celery

app = make_celery("pairing")


@app.task(name=RUN_TASK)  # type: ignore[untyped-decorator]
def run_pairing(run_id: str) -> str:
    """双对接 run — one done or failed does nothing; one cut short is done again."""
    return bus().handle(ExecutePairingRun(run_id=uuid.UUID(run_id)))
