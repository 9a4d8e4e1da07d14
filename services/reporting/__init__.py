"""Reporting — live figures and scheduled summaries for leaders."""

from __future__ import annotations

from shared import runtime as _runtime

NAME = "reporting"


def runtime() -> _runtime.Runtime:
    from services.reporting.models import Base

    return _runtime.get(NAME, Base.metadata)
