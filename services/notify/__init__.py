"""Notify — the month's SMS and e-mail, each sent once."""

from __future__ import annotations

from shared import runtime as _runtime

NAME = "notify"


def runtime() -> _runtime.Runtime:
    from services.notify.models import Base

    return _runtime.get(NAME, Base.metadata)
