"""The figures leaders read (DOMAIN "Common report figures"), from the projections, as of
any instant — one package, three concerns:

- :mod:`.values` — what a figure is: :class:`Figures`, the rates, and the wish states and
  funnel stages (defined there once); what "reported in" and each denominator mean per kind
  of scope is in its docstring;
- :mod:`.queries` — the grouped queries: any number of scopes as of an instant;
- :mod:`.rankings` — levels, rankings (ties by code), lists, the daily series.

``as_of`` is exclusive: the figures as of ``t`` include exactly the changes that occurred
before ``t``, so a half-open period ``[start, end)`` reads ``as_of=end``; ``None`` reads the
current state. Everything is importable from here (``figures.ranking``, ``figures.KINDS``).
"""

from __future__ import annotations

from services.reporting.figures.queries import (
    figures,
    figures_many,
    members_at,
    names,
    verified_before,
)
from services.reporting.figures.rankings import (
    cadres_without_record,
    children,
    daily_series,
    day_end,
    highlights,
    ranking,
)
from services.reporting.figures.values import (
    CITY_NAME,
    CLAIMED,
    COMPLETED,
    DISTRICT_NAMES,
    FULFILLED,
    FUNNEL,
    KINDS,
    PUBLISHED,
    WISH_STATES,
    Figures,
)

__all__ = [
    "CITY_NAME",
    "CLAIMED",
    "COMPLETED",
    "DISTRICT_NAMES",
    "FULFILLED",
    "FUNNEL",
    "KINDS",
    "PUBLISHED",
    "WISH_STATES",
    "Figures",
    "cadres_without_record",
    "children",
    "daily_series",
    "day_end",
    "figures",
    "figures_many",
    "highlights",
    "members_at",
    "names",
    "ranking",
    "verified_before",
]
