"""The figures leaders read (docs/domain.md, "Report figures"), from the projections, as of
any instant — one package, three concerns:

- :mod:`.values` — what a figure is: :class:`Figures`, the rates, and the wish states and
  funnel stages (defined there once); what "reported in" and each denominator mean per kind
  of scope is in its docstring;
- :mod:`.queries` — the grouped queries: any number of scopes as of an instant;
- :mod:`.rankings` — the directory's tree, rankings (ties by code), lists.

``as_of`` is exclusive: the figures as of ``t`` include exactly the changes that occurred
before ``t``, so a half-open period ``[start, end)`` reads ``as_of=end``; ``None`` reads the
current state. What the rest of reporting reads is importable from here
(``figures.ranking``, ``figures.KINDS``); the rest from its module.
"""

from __future__ import annotations

from services.reporting.figures.queries import figures, figures_many
from services.reporting.figures.rankings import (
    Places,
    cadres_without_record,
    children,
    highlights,
    places,
    rank,
    ranking,
)
from services.reporting.figures.values import KINDS, Figures

__all__ = [
    "KINDS",
    "Figures",
    "Places",
    "cadres_without_record",
    "children",
    "figures",
    "figures_many",
    "highlights",
    "places",
    "rank",
    "ranking",
]
