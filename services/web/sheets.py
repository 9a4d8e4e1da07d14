"""Lists as xlsx downloads: Chinese headers, bold and frozen, text kept as text.

What people typed (a record's note, a wish's title) goes into cells others open in Excel;
a note typed as ``=HYPERLINK(...)`` must stay words there, never become a formula that
sends the sheet's other rows away when clicked.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import quote

from fastapi.responses import Response
from openpyxl import Workbook
from openpyxl.styles import Font

from shared.tabular import no_formulas

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
Sheet = tuple[str, Sequence[str], Iterable[Sequence[Any]]]


def workbook(sheets: Sequence[Sheet]) -> bytes:
    """One sheet per (title, headers, rows); every text cell stays text."""
    book = Workbook()
    for sheet in list(book.worksheets):
        book.remove(sheet)
    for title, headers, rows in sheets:
        sheet = book.create_sheet(title)
        sheet.append(list(headers))
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        sheet.freeze_panes = "A2"
        for row in rows:
            sheet.append(["" if v is None else v for v in row])
            no_formulas(sheet[sheet.max_row])
        for index, header in enumerate(headers, 1):
            letter = sheet.cell(1, index).column_letter
            sheet.column_dimensions[letter].width = max(10, len(header) * 2 + 4)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


async def download(filename: str, sheets: Sequence[Sheet]) -> Response:
    """The workbook as an attachment named ``filename`` (UTF-8, RFC 5987), built off the
    event loop (a 20,000-row export must not hold up everyone else's pages)."""
    return Response(
        await asyncio.to_thread(workbook, sheets),
        media_type=XLSX,
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}"},
    )
