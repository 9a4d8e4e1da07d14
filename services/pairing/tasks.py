"""Pairing's Celery app, on its own queue (``servicemonth worker pairing`` runs it).

Pairing has no background task of its own: its one periodic job, the micro-wishes' sweep,
runs in the consume process (:func:`services.pairing.consumers.periodic`), and publishing
pairs the community in the request. A task added here only decodes its arguments, builds a
command and hands it to ``bootstrap.bus()``.
"""

from __future__ import annotations

from shared.workers import make_celery

app = make_celery("pairing")
