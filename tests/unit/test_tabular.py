"""Reading what people bring: xlsx and xls workbooks (a wrong stored size, another writer,
blank rows, numbers and dates), encodings, blank lines, and the bounds on all of them."""

from __future__ import annotations

import io
import re
import zipfile
from datetime import date, datetime

import pytest
import xlwt  # type: ignore[import-untyped]
from openpyxl import Workbook

from shared import tabular
from shared.http import Invalid
from shared.tabular import XLS_MAGIC, read_table


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


def xls(rows: list[list[object]]) -> bytes:
    """An Excel 97–2003 workbook, as old offices still send them."""
    book = xlwt.Workbook(encoding="utf-8")
    sheet = book.add_sheet("花名册")
    date_style = xlwt.easyxf(num_format_str="YYYY-MM-DD")
    for r, values in enumerate(rows):
        for c, value in enumerate(values):
            if isinstance(value, date):
                sheet.write(r, c, value, date_style)
            elif value is not None:
                sheet.write(r, c, value)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_an_xls_workbook_is_read_by_its_content_with_numbers_dates_and_row_numbers() -> None:
    data = xls([
        ["姓名", "身份证号", "手机号", "入党日期", "是否"],
        ["张三", "410302195001010015", 13812348000, date(2016, 7, 1), True],
        [None],
        ["李四", 410302195001010015, "13912348000", None, False],
    ])  # fmt: skip

    table = read_table(data, {"姓名": "name"})

    assert data.startswith(XLS_MAGIC)
    assert table.header == ["name", "身份证号", "手机号", "入党日期", "是否"]
    assert list(table.rows) == [
        (2, {"name": "张三", "身份证号": "410302195001010015", "手机号": "13812348000",
             "入党日期": "2016-07-01", "是否": "是"}),
        (4, {"name": "李四", "身份证号": "4.1030219500101e+17", "手机号": "13912348000",
             "入党日期": "", "是否": "否"}),
    ]  # fmt: skip


def test_an_xls_over_the_row_cap_is_refused_before_any_row_is_used() -> None:
    data = xls([["姓名"], *([f"人{n}"] for n in range(12))])

    with pytest.raises(Invalid) as refused:
        read_table(data, {}, max_rows=10)

    assert refused.value.errors == [
        {"field": "file", "message": "at most 10 rows below the header; split the file"}
    ]
    assert [n for n, _ in read_table(data, {}, max_rows=12).rows][-1] == 13


def test_an_xls_over_its_byte_cap_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tabular, "MAX_XLS_BYTES", 1000)

    with pytest.raises(Invalid, match="too large"):
        read_table(xls([["姓名"], *([f"人{n}"] for n in range(300))]), {})


def test_an_xlsx_with_blank_rows_above_its_header_keeps_the_row_numbers_excel_shows() -> None:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet["B3"], sheet["C3"] = "姓名", "生日"
    sheet["B5"], sheet["C5"] = "张三", datetime(1980, 1, 2, 0, 0)
    sheet["B6"], sheet["C6"] = 410302195001010015, 19800102.0
    out = io.BytesIO()
    book.save(out)

    table = read_table(out.getvalue(), {}, max_rows=3)

    assert table.header == ["姓名", "生日"]
    assert list(table.rows) == [
        (5, {"姓名": "张三", "生日": "1980-01-02"}),
        (6, {"姓名": "4.1030219500101e+17", "生日": "19800102"}),
    ]
    with pytest.raises(Invalid, match="more than 2 rows"):
        list(read_table(out.getvalue(), {}, max_rows=2).rows)


def test_a_workbook_of_another_writer_is_read() -> None:
    """What LibreOffice and other tools write differently from Excel and openpyxl: prefixed
    XML, strings inline, no stated size, no styles."""
    ox = "http://schemas.openxmlformats.org"
    rel = f"{ox}/officeDocument/2006/relationships"
    main = f'xmlns:x="{ox}/spreadsheetml/2006/main"'
    ct = "application/vnd.openxmlformats-officedocument.spreadsheetml"

    def rels(kind: str, target: str) -> str:
        return (f'<Relationships xmlns="{ox}/package/2006/relationships"><Relationship '
                f'Id="rId1" Type="{rel}/{kind}" Target="{target}"/></Relationships>')  # fmt: skip

    def text(ref: str, value: str) -> str:
        return f'<x:c r="{ref}" t="inlineStr"><x:is><x:t>{value}</x:t></x:is></x:c>'

    parts = {
        "[Content_Types].xml": (
            f'<Types xmlns="{ox}/package/2006/content-types">'
            '<Default Extension="rels" '
            'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            f'<Override PartName="/xl/workbook.xml" ContentType="{ct}.sheet.main+xml"/>'
            f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{ct}.worksheet+xml"/>'
            "</Types>"
        ),
        "_rels/.rels": rels("officeDocument", "xl/workbook.xml"),
        "xl/_rels/workbook.xml.rels": rels("worksheet", "worksheets/sheet1.xml"),
        "xl/workbook.xml": (
            f'<x:workbook {main} xmlns:r="{rel}"><x:sheets>'
            '<x:sheet name="花名册" sheetId="1" r:id="rId1"/></x:sheets></x:workbook>'
        ),
        "xl/worksheets/sheet1.xml": (
            f"<x:worksheet {main}><x:sheetData>"
            f'<x:row r="1">{text("A1", "姓名")}{text("B1", "手机号")}</x:row>'
            f'<x:row r="2">{text("A2", " 张三 ")}<x:c r="B2"><x:v>13812348000</x:v></x:c></x:row>'
            "</x:sheetData></x:worksheet>"
        ),
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in parts.items():
            archive.writestr(name, text)

    table = read_table(out.getvalue(), {})

    assert list(table.rows) == [(2, {"姓名": "张三", "手机号": "13812348000"})]
    with pytest.raises(Invalid):  # its rows are counted before it is opened, prefix or not
        read_table(out.getvalue(), {}, max_rows=0)


def test_a_zip_bomb_is_refused_before_calamine_opens_it(monkeypatch: pytest.MonkeyPatch) -> None:
    data = workbook([["姓名"], ["张三"]])
    monkeypatch.setattr(tabular, "MAX_XLSX_BYTES", 1000)

    def never(_data: object) -> None:
        raise AssertionError("calamine opened a workbook over the cap")

    monkeypatch.setattr(tabular.CalamineWorkbook, "from_filelike", never)

    with pytest.raises(Invalid, match="too large"):
        read_table(data, {})


def test_an_opendocument_spreadsheet_is_refused_with_what_to_do() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        archive.writestr("content.xml", "<office:document-content/>")

    with pytest.raises(Invalid, match=r"\.ods.*save it as xlsx"):
        read_table(out.getvalue(), {})


def test_an_ole2_file_that_is_no_workbook_is_refused_with_a_clear_error() -> None:
    with pytest.raises(Invalid, match="workbook cannot be read"):
        read_table(XLS_MAGIC + b"\0" * 600, {})
