"""Facts kept as intervals: a change at an instant cuts the interval covering it.

Facts that change (a registration's state, a pairing, a wish) are kept as intervals
(:class:`~services.reporting.models.Span`) through :func:`change`, so the figures can be
read as of any instant. A change is idempotent on state, not only on event id: the same
picture arriving twice changes nothing the second time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from services.reporting.models import Span
from shared.db import UnitOfWork


def change(
    uow: UnitOfWork,
    model: type[Span],
    key: dict[str, Any],
    values: dict[str, Any],
    at: datetime,
) -> Span | None:
    """Make ``values`` hold for ``key`` from ``at``: the interval covering ``at`` is cut
    there, a new one starts. Nothing happens when the values already hold (a redelivered
    or repeated state); a change arriving late is slotted in before the later ones. Two
    changes at the same instant leave an empty interval and the last applied holds.
    """
    where = [getattr(model, k) == v for k, v in key.items()]
    rows = uow.session.scalars(select(model).where(*where).order_by(model.valid_from, model.id))
    history = list(rows)
    covering = [
        r for r in history if r.valid_from <= at and (r.valid_to is None or r.valid_to > at)
    ]
    if covering:
        current = covering[-1]
        if all(getattr(current, k) == v for k, v in values.items()):
            return current
        until = current.valid_to
        current.valid_to = at
    else:
        later = [r.valid_from for r in history if r.valid_from > at]
        until = min(later) if later else None
    make: Any = model  # a mapped subclass of Span; the mixin itself has no constructor
    row: Span = make(**key, **values, valid_from=at, valid_to=until)
    uow.session.add(row)
    uow.session.flush()
    return row


def current(uow: UnitOfWork, model: type[Span], **key: Any) -> Any:
    """The interval of ``key`` that holds now (``None``: never seen)."""
    where = [getattr(model, k) == v for k, v in key.items()]
    return uow.session.scalar(select(model).where(*where, model.valid_to.is_(None)).limit(1))
