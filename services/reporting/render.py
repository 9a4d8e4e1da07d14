"""The report as an HTML e-mail (Simplified Chinese) that reads well on a phone.

One column, inline CSS, a maximum width; the charts are referenced by their file names
next to the HTML (notify inlines them as ``cid:`` images). Jinja2 escapes every value
(autoescape), and every value passes :func:`redact` on its way out, so a ``<script>`` in a
wish title is text and an ID number or mobile in a note comes out masked.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from services.reporting.contents import LEVELS, Headline, ReportData, percent
from shared.config import CAMPAIGN_TZ
from shared.pii import redact


def _finalize(value: Any) -> Any:
    if isinstance(value, Markup):
        return Markup(redact(str(value)))
    if isinstance(value, str):
        return redact(value)
    return value


def value(h: Headline) -> str:
    """A headline figure as the report shows it ("—" where it does not apply)."""
    if h.value is None:
        return "—"
    if h.kind == "rate":
        return percent(h.value)
    if h.kind == "hours":
        return f"{h.value:,.1f}"
    return f"{h.value:,.0f}"


def _change(h: Headline) -> str:
    if h.change is None:
        return "—"
    if h.kind == "rate":
        return f"{h.change * 100:+.1f} 个百分点"
    if h.kind == "hours":
        return f"{h.change:+,.1f}"
    return f"{h.change:+,.0f}"


def _change_color(h: Headline) -> str:
    return "#2e7d32" if (h.change or 0) > 0 else "#5f6368"


def _amount(value: float) -> str:
    return f"{value:,.1f}" if value % 1 else f"{value:,.0f}"


def _or_dash(value: object) -> str:
    return "—" if value is None else str(value)


def _local(when: datetime) -> str:
    return f"{when.astimezone(CAMPAIGN_TZ):%Y-%m-%d %H:%M}"


templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    undefined=StrictUndefined,
    autoescape=True,
    finalize=_finalize,
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters.update(
    percent=percent,
    value=value,
    change=_change,
    change_color=_change_color,
    amount=_amount,
    or_dash=_or_dash,
    local=_local,
)


def _groups(data: ReportData, show: int = 5) -> list[tuple[str, list[Any]]]:
    ranked = data.ranked
    if len(ranked) <= 2 * show:
        return [("全部排名", ranked)]
    return [(f"前 {show} 名", ranked[:show]), (f"后 {show} 名", ranked[-show:])]


def _cadres(data: ReportData) -> list[tuple[str, list[str]]]:
    by_unit: dict[tuple[str, str], list[str]] = defaultdict(list)
    for code, name, person in data.cadres:
        by_unit[(code, name or code)].append(person)
    return [(name, people) for (_, name), people in sorted(by_unit.items())]


def html(data: ReportData, *, charts: bool = True) -> str:
    """The report's HTML; with ``charts``, it shows ranking.png and progress.png beside it."""
    level = next((LEVELS[f.scope.split(":")[0]] for _, f in data.ranked), "下级")
    return templates.get_template("report.html.j2").render(
        data=data,
        level=level,
        ranking_groups=_groups(data),
        cadres=_cadres(data),
        charts={"png"} if charts else set(),
    )
