"""Pairing — 双对接: needs, projects, pairings, micro-wishes and the five ones."""

from __future__ import annotations

from shared import runtime as _runtime

NAME = "pairing"


def runtime() -> _runtime.Runtime:
    from services.pairing.models import Base

    return _runtime.get(NAME, Base.metadata)
