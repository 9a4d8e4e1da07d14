"""Registration — 双注册: the directory, members and their community registrations."""

from __future__ import annotations

from shared import runtime as _runtime

NAME = "registration"


def runtime() -> _runtime.Runtime:
    from services.registration.models import Base

    return _runtime.get(NAME, Base.metadata)
