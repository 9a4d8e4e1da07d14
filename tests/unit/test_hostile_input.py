"""Hostile input to the validators and the spreadsheet reader: whatever anyone types or
uploads gets a value or a clear refusal (``ValueError`` from a validator, ``Invalid`` naming
the file or the row from the reader), never another exception and never a hang.

The spreadsheets people bring are made by hand in Excel, WPS or LibreOffice: formulas,
merged cells, hidden sheets, headers typed twice, a CSV saved half in GBK. Each of those has
a case here, besides random bytes and random text."""

from __future__ import annotations

import io
import string
import zipfile
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook

from services.registration import rules
from shared.http import Invalid
from shared.pii import mobile
from shared.tabular import MAX_ROWS, read_table

TODAY = date(2016, 7, 1)
ALIASES = {"姓名": "name", "手机号码": "phone", "身份证号": "id_number"}
#: Text as people paste it: CJK, full-width forms, controls, markup, SQL, template syntax.
HOSTILE = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(list("０１２３４５６７８９Ｘ·•・．-—　\u200b\ufeff\x00'\";<>{}%")),
    ),
    max_size=60,
) | st.sampled_from(
    [
        "'; DROP TABLE members; --",
        "<script>alert(1)</script>",
        "{{ 7*7 }}{% for x in () %}",
        '=HYPERLINK("http://x","y")',
        "4103031988010100" + "1X",
        "13800138000" * 50,
    ]
)
VALIDATORS = {
    "id_number": lambda raw: rules.id_number(raw, TODAY),
    "name": rules.name,
    "mobile": mobile,
    "email": rules.email,
    "community_code": rules.community_code,
}


@pytest.mark.parametrize("field", sorted(VALIDATORS))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=HOSTILE)
def test_a_validator_gives_a_value_or_a_value_error(field: str, raw: str) -> None:
    check = VALIDATORS[field]
    try:
        value = check(raw)
    except ValueError as refusal:
        assert str(refusal)  # a message the member can act on
        return
    if field != "community_code":  # a code is only folded, then looked up in the directory
        assert check(value) == value  # what it keeps passes again, unchanged
    if field != "community_code":  # a code is looked up in the directory, not shown raw
        assert not set(value) & set("<>{}\"'\x00") or field == "email"


#: Luoyang's county-level codes, the retired 吉利区 (410306) among them.
REGIONS = ["410302", "410303", "410304", "410305", "410306", "410311", "410322", "410381"]


@settings(max_examples=200, deadline=None)
@given(
    region=st.sampled_from(REGIONS),
    born=st.dates(date(1930, 1, 1), date(1998, 6, 30)),
    serial=st.integers(0, 999),
)
def test_every_real_id_number_passes_in_any_form_people_type_it(
    region: str, born: date, serial: int
) -> None:
    body = f"{region}{born:%Y%m%d}{serial:03d}"
    value = body + rules.check_character(body)
    assert rules.id_number(value, TODAY) == value
    full_width = value.translate(str.maketrans(string.digits + "X", "０１２３４５６７８９Ｘ"))
    assert rules.id_number(f" {full_width.lower()} ", TODAY) == value
    wrong = value[:17] + ("0" if value[17] != "0" else "1")
    with pytest.raises(ValueError, match="check character"):
        rules.id_number(wrong, TODAY)


def _read_all(data: bytes) -> int:
    """Rows the reader gives, or Invalid (re-raised)."""
    table = read_table(data, ALIASES)
    return sum(1 for _ in table.rows)


@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(max_size=4096)
    | st.builds(lambda b: b"PK\x03\x04" + b, st.binary(max_size=2048))
    | st.builds(lambda b: b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b, st.binary(max_size=2048))
    | st.builds(lambda t: t.encode("utf-8", "surrogatepass"), HOSTILE)
)
def test_random_bytes_are_rows_or_a_clear_refusal(data: bytes) -> None:
    try:
        _read_all(data)
    except Invalid as refusal:
        assert refusal.detail


def _xlsx(build: object) -> bytes:
    book = Workbook()
    build(book)  # type: ignore[operator]
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_an_empty_file_and_a_blank_sheet_say_the_file_is_empty() -> None:
    for data in (b"", b"\n\n \n", b"\xef\xbb\xbf", _xlsx(lambda book: None)):
        with pytest.raises(Invalid, match="empty"):
            _read_all(data)


def test_formulas_are_neither_run_nor_kept_as_text() -> None:
    def build(book: Workbook) -> None:
        sheet = book.active
        sheet.append(["姓名", "备注", "手机号码"])
        sheet.append(['=HYPERLINK("http://x","点我")', "=1+1", "13800138000"])

    rows = [row for _, row in read_table(_xlsx(build), ALIASES).rows]
    # A cell gives the result Excel cached with it; openpyxl caches none, and nothing here
    # computes one: no formula runs, none reaches a page or a report as text.
    assert rows == [{"name": "", "备注": "", "phone": "13800138000"}]


def test_merged_cells_and_a_hidden_sheet_read_what_the_first_sheet_shows() -> None:
    def build(book: Workbook) -> None:
        sheet = book.active
        sheet.append(["姓名", "手机号码"])
        sheet.append(["张三", "13800138000"])
        sheet.append(["李四", ""])
        sheet.merge_cells("B2:B3")
        hidden = book.create_sheet("隐藏")
        hidden.append(["姓名"])
        hidden.append(["王五"])
        hidden.sheet_state = "hidden"

    rows = [row for _, row in read_table(_xlsx(build), ALIASES).rows]
    assert [r["name"] for r in rows] == ["张三", "李四"]


def test_a_header_typed_twice_is_refused_naming_it() -> None:
    data = "姓名,手机号码,姓名\n张三,13800138000,李四\n".encode()
    with pytest.raises(Invalid) as refused:
        _read_all(data)
    assert "name" in str(refused.value.errors) or "姓名" in refused.value.detail


def test_a_csv_saved_half_in_gbk_is_refused_not_mangled() -> None:
    data = "姓名,手机号码\n张三,13800138000\n".encode() + "李四,13900139000\n".encode("gbk")
    try:
        rows = [row for _, row in read_table(data, ALIASES).rows]
    except Invalid as refusal:
        assert "UTF-8" in refusal.detail or "GBK" in refusal.detail
    else:  # read as GB18030 (a superset): then every name is what was typed
        assert [r["name"] for r in rows] in (["张三", "李四"],)


def test_a_file_over_the_row_cap_is_refused_whole() -> None:
    data = ("姓名,手机号码\n" + "张三,13800138000\n" * (MAX_ROWS + 50_000)).encode()
    with pytest.raises(Invalid, match="nothing was imported"):
        _read_all(data)


def test_a_zip_bomb_named_xlsx_is_refused_before_it_is_opened() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/worksheets/sheet1.xml", b"<row/>" * 20_000_000)
    with pytest.raises(Invalid):
        _read_all(out.getvalue())
