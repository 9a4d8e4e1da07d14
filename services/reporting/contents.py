"""What a summary report says, gathered once from the read model for one scope and period.

The HTML, the charts and the spreadsheet are three views of one :class:`ReportData`; it
depends only on the scope and the half-open period ``[start, end)`` (figures *as of* the
start and the end), so a closed period re-run says the same thing.

Every text that reaches a report passes :func:`shared.pii.redact` first: an ID number, a
mobile or an e-mail address that slipped into a name, a note or a wish title is masked
before anyone can read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from types import SimpleNamespace
from typing import Any

from services.reporting import figures as fig
from services.reporting import snapshots
from services.reporting.figures import Figures, Places, rank
from shared.config import CAMPAIGN_TZ, Settings
from shared.db import UnitOfWork
from shared.pii import redact
from shared.vocabulary import FIVE_ONES

#: Headline figures: (attribute of Figures, label, kind).
HEADLINE = (
    ("members", "在册党员", "count"),
    ("reported_in_rate", "报到率", "rate"),
    ("dual_registration_rate", "双注册率", "rate"),
    ("dual_pairing_rate", "双对接率", "rate"),
    ("five_ones_rate", "五个一完成率", "rate"),
    ("wish_claim_rate", "微心愿认领率", "rate"),
    ("wish_completion_rate", "微心愿完成率", "rate"),
    ("verified_hours", "志愿服务时长（小时）", "hours"),
    ("cadre_rate", "领导干部参与率", "rate"),
)
RANK_KEY = "dual_pairing_rate"
LEVELS = {"city": "全市", "district": "县（市）区", "unit": "单位", "community": "社区"}


def rate(figures: Figures, key: str) -> float | None:
    value = getattr(figures, key)
    return None if value is None else float(value)


@dataclass(frozen=True)
class Headline:
    key: str
    label: str
    kind: str
    value: float | None
    change: float | None


@dataclass(frozen=True)
class ReportData:
    """Everything one report shows, for ``scope`` over ``[start, end)``."""

    scope: str
    scope_name: str
    start: datetime
    end: datetime
    final: bool
    before: Figures
    after: Figures
    ranked: list[tuple[int, Figures]]
    threshold: float
    cadres: list[tuple[str, str, str]]
    highlights: dict[str, list[tuple[str, str, float]]]
    series: list[tuple[date, Figures]]
    levels: dict[str, list[tuple[int, Figures]]] = field(default_factory=dict)

    @property
    def title(self) -> str:
        kind = "终期报告" if self.final else "定期报告"
        return redact(f"在职党员进社区服务月{kind}·{self.scope_name}")

    @property
    def period_label(self) -> str:
        start = self.start.astimezone(CAMPAIGN_TZ)
        end = self.end.astimezone(CAMPAIGN_TZ)
        return f"{start:%Y-%m-%d %H:%M} 至 {end:%Y-%m-%d %H:%M}（不含）"

    @property
    def headline(self) -> list[Headline]:
        result = []
        for key, label, kind in HEADLINE:
            now, then = rate(self.after, key), rate(self.before, key)
            change = None if now is None or then is None else now - then
            result.append(Headline(key, label, kind, now, change))
        return result

    @property
    def laggards(self) -> list[tuple[int, Figures]]:
        return [
            (rank, f)
            for rank, f in self.ranked
            if (value := rate(f, RANK_KEY)) is not None and value < self.threshold
        ]

    @property
    def funnel(self) -> list[tuple[str, int | None]]:
        """The wish funnel at the period's end (stages: ``figures.values.FUNNEL``; a unit has no
        "published" stage, ``None``)."""
        return [(label, count) for _, label, count in self.after.funnel]

    @property
    def five_ones(self) -> list[tuple[str, int, float | None]]:
        items: dict[str, int] = dict(self.after.five_ones)
        base = self.after.reported_in
        return [
            (label, items.get(key, 0), items.get(key, 0) / base if base else None)
            for key, label in FIVE_ONES.items()
        ]

    def sms(self) -> str:
        """The one-line SMS: scope, period end, and the three figures leaders look at."""
        figures = {h.key: h for h in self.headline}
        parts = [
            f"{figures[k].label}{percent(figures[k].value)}"
            for k in ("reported_in_rate", "dual_registration_rate", "dual_pairing_rate")
        ]
        end = self.end.astimezone(CAMPAIGN_TZ)
        return redact(f"{self.scope_name}截至{end:%m月%d日%H:%M}：" + "，".join(parts))

    def sections(self) -> dict[str, Any]:
        """The figures and ranks as plain values (what a re-run must reproduce exactly)."""
        return {
            "headline": [(h.key, h.value, h.change) for h in self.headline],
            "ranked": [(rank, f.scope, rate(f, RANK_KEY)) for rank, f in self.ranked],
            "laggards": [(rank, f.scope) for rank, f in self.laggards],
            "funnel": self.funnel,
            "five_ones": self.five_ones,
            "cadres": list(self.cadres),
            "highlights": {k: list(v) for k, v in sorted(self.highlights.items())},
            "series": [(d.isoformat(), f.as_dict()) for d, f in self.series],
            "levels": {
                level: [(rank, f.as_dict()) for rank, f in rows]
                for level, rows in self.levels.items()
            },
        }


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def laggard_threshold(settings: Settings) -> float:
    return settings.reporting.laggard_threshold


def level_scopes(places: Places, scope: str) -> dict[str, list[str]]:
    """The scopes of each level at and below ``scope``, for the drill-down sheets."""
    levels: dict[str, list[str]] = {scope.split(":")[0]: [scope]}
    if scope == "city":
        districts = places.children("city", "district")
        levels["district"] = districts
        units = places.children("city", "unit")
        communities: list[str] = []
        for district in districts:
            units += places.children(district)
            communities += places.children(district, "community")
        levels["unit"], levels["community"] = units, communities
    elif scope.startswith("district:"):
        levels["unit"] = places.children(scope)
        levels["community"] = places.children(scope, "community")
    return {k: list(dict.fromkeys(levels[k])) for k in LEVELS if levels.get(k)}


#: What :func:`gather` reads by default; tests pass a stand-in with the same functions.
READ_MODEL = SimpleNamespace(
    places=fig.places,
    figures=fig.figures,
    figures_many=fig.figures_many,
    cadres_without_record=fig.cadres_without_record,
    highlights=fig.highlights,
    daily_series=snapshots.daily_series,
)


def gather(
    uow: UnitOfWork,
    scope: str,
    start: datetime,
    end: datetime,
    *,
    threshold: float,
    campaign_start: date,
    final: bool = False,
    source: Any = None,
) -> ReportData:
    """Read the report's figures for ``scope`` over ``[start, end)`` from the read model.

    ``source`` is :data:`READ_MODEL` (``None``) or a stand-in with its functions.
    Districts are ranked for the city, units for a district; every scope shown is read once
    as of ``end``. The progress line runs from the campaign's first day to the last full
    day of the period.
    """
    source = source or READ_MODEL
    tree = source.places(uow)
    direct = tree.children(scope, "district" if scope == "city" else None)
    levels = level_scopes(tree, scope)
    shown = [scope, *direct, *(s for scopes in levels.values() for s in scopes)]
    found = source.figures_many(uow, shown, end)
    after = found[scope]
    last_day = end.astimezone(CAMPAIGN_TZ).date()
    return ReportData(
        scope=scope,
        scope_name=str(after.name or scope),
        start=start,
        end=end,
        final=final,
        before=source.figures(uow, scope, start),
        after=after,
        ranked=rank([found[s] for s in direct], RANK_KEY),
        threshold=threshold,
        cadres=list(source.cadres_without_record(uow, scope, end)),
        highlights=dict(source.highlights(uow, scope, start, end)),
        series=list(source.daily_series(uow, scope, campaign_start, last_day)),
        levels={
            level: rank([found[s] for s in scopes], RANK_KEY) for level, scopes in levels.items()
        },
    )
