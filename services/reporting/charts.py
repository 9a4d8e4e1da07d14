"""The report's two charts as PNG: a ranking bar chart and the cumulative progress line.

Drawn with matplotlib's Agg canvas (no display, no pyplot state shared between threads) in
a font that has Chinese glyphs, found at run time (Noto Sans CJK SC from Debian's
``fonts-noto-cjk``, or WenQuanYi Micro Hei). Every string drawn passes :func:`redact`, and
each chart returns the texts it drew so a test can check them.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from matplotlib import font_manager
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text

from services.reporting.contents import LEVELS, RANK_KEY, ReportData, rate
from shared.pii import redact

CJK_FAMILIES = (
    "Noto Sans CJK SC",
    "Source Han Sans SC",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "Noto Sans CJK JP",
)
#: How the files of those families are named (Noto/Source Han CJK, WenQuanYi).
CJK_FILE_MARKS = ("CJK", "SourceHan", "wqy")
RED, GREY, GOLD = "#c8161d", "#9e9e9e", "#d4a017"


class NoChineseFont(RuntimeError):
    """No installed font renders Chinese (install fonts-noto-cjk: scripts/system-packages.sh)."""


def _installed_cjk_font() -> str | None:
    manager = font_manager.fontManager
    for family in CJK_FAMILIES:
        try:
            return str(
                manager.findfont(
                    font_manager.FontProperties(family=family), fallback_to_default=False
                )
            )
        except ValueError:
            continue
    return None


@cache
def cjk_font() -> font_manager.FontProperties:
    """The first installed font family that renders Simplified Chinese.

    Matplotlib caches the system's font list the first time it runs; a CJK font installed
    since (the project's set-up installs one) is added from the system's font folders."""
    path = _installed_cjk_font()
    if path is None:
        for found in font_manager.findSystemFonts():
            if any(mark in Path(found).name for mark in CJK_FILE_MARKS):
                font_manager.fontManager.addfont(found)
        path = _installed_cjk_font()
    if path is None:
        raise NoChineseFont("no Chinese font found; install fonts-noto-cjk")
    return font_manager.FontProperties(fname=path)


@dataclass(frozen=True)
class Chart:
    """A drawn chart: the PNG and every text on it."""

    png: bytes
    texts: list[str]


def _render(fig: Figure) -> Chart:
    FigureCanvasAgg(fig)
    texts = [t.get_text() for t in fig.findobj(Text) if t.get_text()]
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return Chart(buffer.getvalue(), texts)


def _style(fig: Figure, title: str) -> None:
    font = cjk_font()
    for ax in fig.axes:
        for label in [*ax.get_xticklabels(), *ax.get_yticklabels()]:
            label.set_fontproperties(font)
        ax.spines[["top", "right"]].set_visible(False)
    fig.suptitle(redact(title), fontproperties=font, fontsize=13)


def ranking_chart(data: ReportData, limit: int = 20) -> Chart:
    """Children of the scope ranked by dual pairing rate; bars below the threshold in grey."""
    rows = data.ranked[:limit]
    fig = Figure(figsize=(6.0, 0.9 + 0.32 * max(len(rows), 1)))
    ax = fig.add_subplot()
    names = [redact(f"{rank}. {f.name or f.scope}") for rank, f in rows]
    values = [(rate(f, RANK_KEY) or 0.0) * 100 for _, f in rows]
    colors = [RED if v / 100 >= data.threshold else GREY for v in values]
    ax.barh(range(len(rows)), values, color=colors)
    ax.set_yticks(range(len(rows)), names)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.axvline(data.threshold * 100, color=GOLD, linestyle="--", linewidth=1)
    ax.set_xlabel("双对接率（%）", fontproperties=cjk_font())
    for y, value in enumerate(values):
        ax.text(value + 1, y, f"{value:.1f}%", va="center", fontsize=8)
    if not rows:
        ax.text(50, 0, "暂无下级数据", ha="center", fontproperties=cjk_font())
    level = next((LEVELS[f.scope.split(":")[0]] for _, f in rows), "下级")
    _style(fig, f"各{level}双对接率排名")
    return _render(fig)


def progress_chart(data: ReportData) -> Chart:
    """Cumulative progress by day: reported in, dual-registered, dual-paired, five ones."""
    fig = Figure(figsize=(6.0, 3.4))
    ax = fig.add_subplot()
    days = [d for d, _ in data.series]
    x = list(range(len(days)))
    lines = (
        ("reported_in", "报到", RED),
        ("dual_registered", "双注册", GOLD),
        ("dual_paired", "双对接", "#1f77b4"),
        ("five_ones_complete", "五个一完成", "#2ca02c"),
    )
    for key, label, color in lines:
        ax.plot(x, [getattr(f, key) for _, f in data.series], label=label, color=color)
    ax.set_ylabel("人数", fontproperties=cjk_font())
    ax.legend(prop=cjk_font(), fontsize=8, frameon=False)
    step = max(len(days) // 8, 1)
    ax.set_xticks(x[::step], [f"{d:%m-%d}" for d in days[::step]])
    ax.set_ylim(bottom=0)
    fig.autofmt_xdate()
    if not days:
        ax.text(
            0.5, 0.5, "暂无数据", ha="center", transform=ax.transAxes, fontproperties=cjk_font()
        )
    _style(fig, "累计进度")
    return _render(fig)
