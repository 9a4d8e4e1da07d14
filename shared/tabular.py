"""Reading the spreadsheets people bring: xlsx, or CSV in UTF-8, UTF-8 with BOM or GBK.

Rows are numbered as the spreadsheet shows them (the header is row 1), so an error can
say "row 17" and the unit finds it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from openpyxl import load_workbook

from shared.http import Invalid

XLSX_MAGIC = b"PK\x03\x04"


@dataclass
class Table:
    header: list[str]
    rows: Iterator[tuple[int, dict[str, str]]]


def decode_csv(data: bytes) -> str:
    """UTF-8 (with or without BOM) first, then GB18030 (a superset of GBK)."""
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise Invalid("the file is neither UTF-8 nor GBK/GB18030 text, nor an xlsx workbook")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # Excel keeps 15 significant digits: an 18-digit ID typed as a number is damaged.
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, datetime | date):
        return value.strftime("%Y-%m-%d")
    return str(value).strip()


def _xlsx_rows(data: bytes) -> Iterator[list[str]]:
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # a damaged or foreign file: say so, not a traceback
        raise Invalid(f"the workbook cannot be read ({type(exc).__name__})") from None
    try:
        sheet = workbook.worksheets[0]
        # Some writers store a wrong sheet size (A1:A1); read-only mode would trust it.
        sheet.reset_dimensions()
        for row in sheet.iter_rows(values_only=True):
            yield [_cell(v) for v in row]
    finally:
        workbook.close()  # read-only workbooks keep the archive open until closed


def read_table(data: bytes, aliases: dict[str, str]) -> Table:
    """The header (mapped to canonical names through ``aliases``) and the numbered rows."""
    if data.startswith(XLSX_MAGIC):
        raw_rows: Iterator[list[str]] = _xlsx_rows(data)
    else:
        raw_rows = ([c.strip() for c in row] for row in csv.reader(io.StringIO(decode_csv(data))))
    try:
        first = next(raw_rows)
    except StopIteration:
        raise Invalid("the file is empty") from None
    header = [aliases.get(h.strip().lstrip("\ufeff"), h.strip()) for h in first]

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        for number, values in enumerate(raw_rows, start=2):
            if not any(values):
                continue  # blank lines Excel leaves behind
            yield number, {h: (values[i] if i < len(values) else "") for i, h in enumerate(header)}

    return Table(header, rows())
