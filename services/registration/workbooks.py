"""The workbooks registration hands out: the blank roster template (the headers of
docs/contract.md, ID/phone/community columns as text so Excel keeps every digit) and a
roster's rejected rows with a 错误原因 column, to fix and upload again."""

from __future__ import annotations

import io
import uuid
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation
from sqlalchemy import select

from services.registration import rosters
from services.registration.models import RosterError
from shared.db import UnitOfWork
from shared.pii import Sealer
from shared.vocabulary import SKILLS

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _text_columns(sheet: Any, headers: list[str]) -> None:
    for number, header in enumerate(headers, start=1):
        name = rosters.field_of(header)
        column = sheet.column_dimensions[get_column_letter(number)]
        column.width = 24 if name in rosters.TEXT_FIELDS else max(12, 2 * len(header) + 2)
        if name in rosters.TEXT_FIELDS:
            column.number_format = "@"


def errors_workbook(uow: UnitOfWork, roster_id: uuid.UUID, sealer: Sealer) -> tuple[bytes, int]:
    """The rejected rows with their original columns and a 错误原因 column; and how many."""
    query = (
        select(RosterError.row, RosterError.field, RosterError.message, RosterError.row_sealed)
        .where(RosterError.roster_id == roster_id)
        .order_by(RosterError.row, RosterError.id)
    )
    failed: dict[int, tuple[list[list[str]], list[tuple[str, str]]]] = {}
    for row, name, message, sealed in uow.session.execute(query).tuples():
        if row not in failed:
            cells = sealer.open_json(sealed, rosters.ROW_CONTEXT)["cells"] if sealed else []
            failed[row] = (cells, [])
        failed[row][1].append((name, message))
    first = next(iter(failed.values()), None)
    headers = [h for h, _ in first[0]] if first else [h for _, h in rosters.COLUMNS]
    labels = {rosters.field_of(h): h for h in headers}
    book = Workbook(write_only=True)
    sheet = book.create_sheet("错误行")
    sheet.freeze_panes = "A2"
    _text_columns(sheet, headers)
    sheet.append([*headers, "错误原因"])
    for row, (cells, problems) in failed.items():
        reasons = "；".join(
            f"{labels.get(f) or rosters.LABELS.get(f, f)}：{m}" for f, m in problems
        )
        values = [*(v for _, v in cells), f"第{row}行 — {reasons}"]
        sheet.append([_as_text(sheet, v) for v in values])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue(), len(failed)


def _as_text(sheet: Any, value: str) -> WriteOnlyCell:
    """A cell that holds ``value`` as text, even when it starts with '=' (no formulas)."""
    cell = WriteOnlyCell(sheet, value=value)
    cell.data_type = "s"
    return cell


def template_workbook() -> bytes:
    """A blank roster: the headers of docs/contract.md, ID/phone/community columns as text
    (Excel keeps all 18 digits), 是/否 offered for the cadre column, and a sheet listing the
    skills."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "花名册"
    headers = [h for _, h in rosters.COLUMNS]
    sheet.append(headers)
    sheet.freeze_panes = "A2"
    _text_columns(sheet, headers)
    last = get_column_letter(len(headers))
    yes_no = DataValidation(type="list", formula1='"是,否"', allow_blank=True)
    sheet.add_data_validation(yes_no)
    yes_no.add(f"{last}2:{last}1048576")
    skills = book.create_sheet("专长选项")
    skills.append(["专长（可填多项，用、分隔；其他专长照写即可）"])
    skills.column_dimensions["A"].width = 30
    for skill in SKILLS:
        skills.append([skill])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
