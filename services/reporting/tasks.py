"""Reporting's Celery app: its own background work on its own queue."""

from __future__ import annotations

from shared.workers import make_celery

app = make_celery("reporting")
