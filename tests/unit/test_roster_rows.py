"""Reading a roster: which column is which field, and what each row becomes (花名册)."""

from __future__ import annotations

import io
import uuid
from datetime import date

import pytest
from openpyxl import Workbook

from services.registration.enrolment import Directory
from services.registration.models import Community, Unit
from services.registration.roster_writer import new_ids
from services.registration.rosters import COLUMNS, check_row, estimate_rows, layout, leader_flag
from services.registration.rules import check_character
from shared.http import Invalid
from shared.pii import Sealer

TODAY = date(2016, 7, 1)
SEALER = Sealer(b"k" * 32)
CHINESE = [header for _, header in COLUMNS]


class FixedDirectory(Directory):
    """The directory with one unit and one community, no database behind it."""

    def __init__(self) -> None:
        community = Community(code="410303001001", name="王城社区", district_code="410303")
        unit = Unit(code="U1", name="示例局", level="county", district_code="410303",
                    community_code="410303001001")  # fmt: skip
        self.units = {"U1": unit}
        self.communities = {"410303001001": community}
        self._complete = True


def row(**changes: str) -> dict[str, str]:
    body = "41030219800101001"
    values = ["王建国", body + check_character(body), "13812345678", "", "410303001001",
              "医疗护理、法律咨询", "是"]  # fmt: skip
    cells = dict(zip(CHINESE, values, strict=True))
    return cells | changes


def test_chinese_headers_map_to_fields() -> None:
    assert layout(CHINESE).columns["id_number"] == "身份证号"


def test_english_headers_in_any_case_are_accepted() -> None:
    columns = layout(["Name", "ID_Number", "PHONE", "residence_community_code"]).columns

    assert set(columns) == {"name", "id_number", "phone", "residence_community_code"}


def test_other_chinese_spellings_are_accepted() -> None:
    columns = layout(["姓名", "公民身份号码", "联系电话", "居住社区", "邮箱"]).columns

    assert set(columns) == {"name", "id_number", "phone", "residence_community_code", "email"}


def test_a_missing_required_column_is_named() -> None:
    with pytest.raises(Invalid) as refused:
        layout(["姓名", "手机号", "居住社区代码", "备注"])

    assert refused.value.errors == [
        {"field": "id_number", "message": "no 身份证号 (id_number) column"}
    ]


def test_the_same_field_in_two_columns_is_refused() -> None:
    with pytest.raises(Invalid) as refused:
        layout([*CHINESE, "身份证号码"])

    assert refused.value.errors[0]["field"] == "id_number"


def test_columns_the_roster_does_not_know_are_ignored() -> None:
    assert layout([*CHINESE, "备注", "错误原因"]).headers[-1] == "错误原因"


@pytest.mark.parametrize(
    ("text", "flag"),
    [("是", True), ("否", False), ("Y", True), ("n", False), ("TRUE", True), ("0", False),
     ("", False), (" 是 ", True)],
)  # fmt: skip
def test_the_leading_cadre_column_reads_yes_and_no(text: str, flag: bool) -> None:
    assert leader_flag(text) is flag


def test_a_leading_cadre_value_that_is_neither_yes_nor_no_is_refused() -> None:
    with pytest.raises(ValueError, match="是 or 否"):
        leader_flag("也许")


def test_a_good_row_gives_the_member_and_the_hash_of_the_id_number() -> None:
    checked = check_row(2, row(), layout(CHINESE), "U1", FixedDirectory(), TODAY, SEALER)

    assert checked.errors == []
    assert checked.values is not None and checked.values.is_leader_cadre
    assert checked.values.skills == ["医疗护理", "法律咨询"]
    assert checked.digest == SEALER.digest(row()["身份证号"])


def test_a_bad_row_names_every_bad_field_and_keeps_its_cells_for_errors_xlsx() -> None:
    bad = row(姓名="王2", 手机号="138123456789", 是否县处级以上领导干部="也许")

    checked = check_row(7, bad, layout(CHINESE), "U1", FixedDirectory(), TODAY, SEALER)

    assert [e["field"] for e in checked.errors] == ["name", "phone", "is_leader_cadre"]
    assert checked.values is None and checked.digest is None
    assert checked.cells == [[h, bad[h]] for h in CHINESE]


def test_a_phone_behind_a_carrier_prefix_that_cannot_be_parsed_is_a_bad_row_not_a_crash() -> None:
    # 179xx is a carrier prefix: phonenumbers strips it and fails on what is left
    checked = check_row(4, row(手机号="17900002100"), layout(CHINESE), "U1", FixedDirectory(),
                        TODAY, SEALER)  # fmt: skip

    assert [e["field"] for e in checked.errors] == ["phone"]
    assert checked.errors[0]["message"] == "179 is not an allocated mobile prefix"


def test_an_id_number_excel_turned_into_a_number_says_to_format_the_column_as_text() -> None:
    checked = check_row(3, row(身份证号="4.10302198001e+17"), layout(CHINESE), "U1",
                        FixedDirectory(), TODAY, SEALER)  # fmt: skip

    assert "format as text" in checked.errors[0]["message"]


def test_no_id_number_or_phone_appears_in_an_error_message() -> None:
    bad = row(身份证号=row()["身份证号"][:17] + "0", 手机号="1381234567899")

    checked = check_row(3, bad, layout(CHINESE), "U1", FixedDirectory(), TODAY, SEALER)

    text = repr(checked.errors)
    assert bad["身份证号"] not in text and bad["手机号"] not in text


def test_the_row_estimate_for_a_progress_bar_counts_lines_or_reads_the_sheet_size() -> None:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for n in range(31):
        sheet.append([f"r{n}"])
    out = io.BytesIO()
    book.save(out)

    assert estimate_rows(b"a,b\n1,2\n3,4\n") == 2
    assert estimate_rows(out.getvalue()) == 30


def test_free_text_skills_never_reject_a_row_and_unmapped_words_make_a_note() -> None:
    checked = check_row(4, row(专长="法律、教育，摄影"), layout(CHINESE), "U1", FixedDirectory(),
                        TODAY, SEALER)  # fmt: skip

    assert checked.errors == []
    assert checked.values is not None
    assert (checked.values.skills, checked.values.skills_other) == (
        ["法律咨询", "教育辅导"],
        ["摄影"],
    )
    assert checked.notes == [
        {"field": "skills", "message": "not in the skills list, kept as own words: 摄影"}
    ]


def test_a_row_typed_with_full_width_digits_prefixes_and_dashes_is_good() -> None:
    typed = row(身份证号="４１０３０２１９８００１０１００１" + row()["身份证号"][-1],
                手机号="+86 138-1234-5678", 居住社区代码="４１０３０３００１００１")  # fmt: skip

    checked = check_row(5, typed, layout(CHINESE), "U1", FixedDirectory(), TODAY, SEALER)

    assert checked.errors == []
    assert checked.values is not None
    assert (checked.values.phone, checked.values.residence.code) == ("13812345678", "410303001001")
    assert checked.digest == SEALER.digest(row()["身份证号"])
    assert checked.notes == []


def test_the_roster_writers_ids_are_random_version_4_uuids() -> None:
    ids = list(new_ids(2000))

    assert len(set(ids)) == 2000
    parsed = [uuid.UUID(i) for i in ids]
    assert all(str(u) == i for u, i in zip(parsed, ids, strict=True))
    assert {(u.version, u.variant) for u in parsed} == {(4, uuid.RFC_4122)}
