"""The report's XLSX attachment: one sheet per level (全市, 县（市）区, 单位, 社区) to drill down.

Frozen header row, column widths that fit Chinese names, number formats (percent, hours to
one decimal). Only figures and names of places are written, each through :func:`redact`:
no ID number or mobile can reach a cell.
"""

from __future__ import annotations

import io
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from services.reporting.contents import LEVELS, ReportData
from shared.pii import redact
from shared.tabular import no_formulas
from shared.vocabulary import FIVE_ONES

PERCENT = "0.0%"
HOURS = "0.0"
COUNT = "#,##0"

#: (header, attribute of Figures or a five-ones item, number format, width)
COLUMNS: tuple[tuple[str, str, str | None, int], ...] = (
    ("名次", "#rank", None, 6),
    ("代码", "scope", None, 22),
    ("名称", "name", None, 28),
    ("在册党员", "members", COUNT, 10),
    ("已报到", "reported_in", COUNT, 10),
    ("报到率", "reported_in_rate", PERCENT, 9),
    ("双注册", "dual_registered", COUNT, 10),
    ("双注册率", "dual_registration_rate", PERCENT, 10),
    ("双对接", "dual_paired", COUNT, 10),
    ("双对接率", "dual_pairing_rate", PERCENT, 10),
    *((label, f"five:{key}", COUNT, 12) for key, label in FIVE_ONES.items()),
    ("五个一全部完成", "five_ones_complete", COUNT, 14),
    ("五个一完成率", "five_ones_rate", PERCENT, 12),
    ("微心愿认领率", "wish_claim_rate", PERCENT, 12),
    ("微心愿完成率", "wish_completion_rate", PERCENT, 12),
    ("服务时长（小时）", "verified_hours", HOURS, 14),
    ("领导干部", "leading_cadres", COUNT, 10),
    ("已参与领导干部", "leading_cadres_active", COUNT, 14),
    ("领导干部参与率", "cadre_rate", PERCENT, 14),
)
HEADER_FILL = PatternFill("solid", fgColor="C8161D")


def _cell(rank: int, figures: Any, key: str) -> Any:
    if key == "#rank":
        return rank
    if key.startswith("five:"):
        return dict(figures.five_ones).get(key[5:], 0)
    value = getattr(figures, key)
    if value is None:
        return "—"  # a rate that does not apply here (a unit's wish claim rate)
    if isinstance(value, str):
        return redact(value)
    return value


def workbook(data: ReportData) -> bytes:
    """The XLSX bytes: a cover sheet of the period, then one sheet per level."""
    book = Workbook()
    cover = book.active
    assert cover is not None
    cover.title = "说明"
    cover.append(["报告", redact(data.title)])
    cover.append(["统计区间", data.period_label])
    cover.append(["排名依据", "双对接率（并列按代码排序）"])
    no_formulas(cover["B"])
    cover.column_dimensions["A"].width = 12
    cover.column_dimensions["B"].width = 60
    for level, rows in data.levels.items():
        sheet = book.create_sheet(LEVELS[level])
        sheet.append([header for header, *_ in COLUMNS])
        for cell in sheet[1]:
            cell.font = Font(bold=True, color="FFFFFF")
            cell.fill = HEADER_FILL
            cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
        for rank, figures in rows:
            sheet.append([_cell(rank, figures, key) for _, key, _, _ in COLUMNS])
            no_formulas(sheet[sheet.max_row])
        for index, (_, _, number_format, width) in enumerate(COLUMNS, start=1):
            letter = get_column_letter(index)
            sheet.column_dimensions[letter].width = width
            if number_format:
                for (cell,) in sheet.iter_rows(min_row=2, min_col=index, max_col=index):
                    cell.number_format = number_format
        sheet.freeze_panes = "A2"
        sheet.auto_filter.ref = sheet.dimensions
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
