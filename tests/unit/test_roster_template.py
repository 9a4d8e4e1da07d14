"""The blank roster template a unit fills in (servicemonth roster template)."""

from __future__ import annotations

import io

from openpyxl import load_workbook

from services.registration.rosters import open_table
from services.registration.workbooks import template_workbook
from shared.vocabulary import SKILLS

DESIGN_ORDER = [
    "姓名",
    "身份证号",
    "手机号",
    "电子邮箱",
    "居住社区代码",
    "专长",
    "是否县处级以上领导干部",
]


def test_the_template_has_the_chinese_headers_in_design_order_under_a_frozen_row() -> None:
    sheet = load_workbook(io.BytesIO(template_workbook())).worksheets[0]

    assert [c.value for c in sheet[1]] == DESIGN_ORDER
    assert sheet.freeze_panes == "A2"


def test_id_and_phone_columns_are_text_so_excel_keeps_all_18_digits() -> None:
    sheet = load_workbook(io.BytesIO(template_workbook())).worksheets[0]

    assert sheet.column_dimensions["B"].number_format == "@"
    assert sheet.column_dimensions["C"].number_format == "@"
    assert sheet.column_dimensions["A"].number_format == "General"


def test_the_cadre_column_offers_yes_and_no() -> None:
    sheet = load_workbook(io.BytesIO(template_workbook())).worksheets[0]

    (validation,) = sheet.data_validations.dataValidation
    assert validation.formula1 == '"是,否"' and "G2" in str(validation.sqref)


def test_a_second_sheet_lists_the_skills_vocabulary() -> None:
    skills = load_workbook(io.BytesIO(template_workbook())).worksheets[1]

    assert [c.value for c in skills["A"]][1:] == list(SKILLS)


def test_the_blank_template_is_a_valid_roster_with_no_rows() -> None:
    lay, rows = open_table(template_workbook())

    assert set(lay.columns) >= {"name", "id_number", "phone", "residence_community_code"}
    assert list(rows) == []
