"""Reading what people bring: workbooks with a wrong stored size, encodings, blank lines."""

from __future__ import annotations

import io
import re
import zipfile

import pytest
from openpyxl import Workbook

from shared.http import Invalid
from shared.tabular import read_table


def workbook(rows: list[list[str]], stored_dimension: str | None = None) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    if stored_dimension is None:
        return buffer.getvalue()
    src, out = zipfile.ZipFile(io.BytesIO(buffer.getvalue())), io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename.endswith("sheet1.xml"):
                data = re.sub(rb'<dimension ref="[^"]+"/>', stored_dimension.encode(), data)
            dst.writestr(item, data)
    return out.getvalue()


def test_a_workbook_that_misstates_its_size_is_read_whole() -> None:
    data = workbook([["姓名", "手机号"], ["张三", "13812348000"]], '<dimension ref="A1:A1"/>')
    table = read_table(data, {})
    assert table.header == ["姓名", "手机号"]
    assert list(table.rows) == [(2, {"姓名": "张三", "手机号": "13812348000"})]


def test_gbk_csv_with_a_blank_line_keeps_spreadsheet_row_numbers() -> None:
    data = "姓名,手机号\n张三,13812348000\n\n李四,13912348000\n".encode("gbk")
    table = read_table(data, {"姓名": "name"})
    assert table.header == ["name", "手机号"]
    assert [n for n, _ in table.rows] == [2, 4]


def test_a_damaged_workbook_is_refused_with_a_clear_error() -> None:
    with pytest.raises(Invalid, match="workbook cannot be read"):
        list(read_table(b"PK\x03\x04 not really a zip", {}).rows)
