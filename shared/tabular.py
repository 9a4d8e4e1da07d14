"""Reading the spreadsheets people bring: xlsx, xls (Excel 97–2003), or CSV in UTF-8,
UTF-8 with BOM or GBK. The kind is told by the content, not the name.

Rows are numbered as the spreadsheet shows them (the header is row 1), so an error can
say "row 17" and the unit finds it.

Workbooks are read with calamine (python-calamine; several times faster than openpyxl on
a roster, and it reads .xls and what LibreOffice writes); openpyxl only writes.

Every upload is bounded before its first row is used: at most :data:`MAX_ROWS` rows below
the header (the whole city has about 200,000 members) and, for xlsx, at most
:data:`MAX_XLSX_BYTES` once uncompressed (an 80 KB workbook can expand to a million rows).
An xlsx's rows are counted by streaming its sheets' XML, stopping as soon as the cap is
passed, before calamine opens it; an xls is not compressed, so its size is its bytes (at
most :data:`MAX_XLS_BYTES`), and its rows are counted from the sheet's size before any is
used. What is reported back per import is capped too (:data:`MAX_ERRORS`).
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from python_calamine import CalamineWorkbook

from shared.http import Invalid

XLSX_MAGIC = b"PK\x03\x04"
#: An OLE2 compound file: an .xls (Excel 97–2003) workbook.
XLS_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
#: Rows below the header an upload may have: above the whole city's ~200,000 members.
MAX_ROWS = 250_000
#: An xlsx's parts together, uncompressed; a 250,000-row roster takes about 100 MB.
MAX_XLSX_BYTES = 256 * 1024 * 1024
#: An xls file (not compressed; the format holds at most 65,536 rows a sheet).
MAX_XLS_BYTES = 64 * 1024 * 1024
#: Problems an import keeps and reports (the first ones, in file order), besides their total.
MAX_ERRORS = 500
_ROW_TAG = re.compile(rb"<(?:\w+:)?row[\s>/]")


def no_formulas(cells: Iterable[Any]) -> None:
    """Keep what people typed as words in a sheet we write: openpyxl takes a string with a
    leading '=' for a formula (``=HYPERLINK(...)`` would send the sheet's rows away when
    clicked)."""
    for cell in cells:
        if cell.data_type == "f":
            cell.data_type = "s"


def too_many_rows(cap: int = MAX_ROWS) -> Invalid:
    """The refusal of a file over the row cap: nothing of it is imported."""
    message = f"at most {cap:,} rows below the header; split the file"
    return Invalid(
        f"the file has more than {cap:,} rows; nothing was imported",
        [{"field": "file", "message": message}],
    )


def first_errors(errors: list[dict[str, str]]) -> list[dict[str, str]]:
    """The first :data:`MAX_ERRORS` of ``errors``, enough to find and fix the pattern."""
    return errors[:MAX_ERRORS]


@dataclass
class Table:
    header: list[str]
    rows: Iterator[tuple[int, dict[str, str]]]


def decode_csv(data: bytes) -> str:
    """UTF-8 (with or without BOM) first, then GB18030 (a superset of GBK). A file whose
    first lines are UTF-8 with Chinese in them and whose later lines are not was saved in
    two encodings (rows pasted in from another file): refused, naming the line, rather than
    read whole as GB18030 into garbled names."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as bad:
        lines_before = data.count(b"\n", 0, bad.start)
        if lines_before and not data[: data.rindex(b"\n", 0, bad.start)].isascii():
            line = lines_before + 1
            message = f"line {line} is not UTF-8 like the lines above it"
            raise Invalid(
                f"the file mixes two encodings from line {line} on: save it again as "
                "CSV UTF-8 or as xlsx",
                [{"field": "file", "message": message}],
            ) from None
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError:
        pass
    raise Invalid("the file is neither UTF-8 nor GBK/GB18030 text, nor an xlsx or xls workbook")


def _cell(value: Any) -> str:
    if value is None or value == "":
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


def _check_xlsx(data: bytes, max_rows: int) -> None:
    """Refuse a workbook whose parts expand past :data:`MAX_XLSX_BYTES` (a zip bomb), or
    with a sheet of more than ``max_rows`` rows below its header, before calamine opens it
    (it would inflate and parse every sheet into memory just to size it).

    The sizes are the archive's own: zipfile never inflates a part past its stated size.
    Every sheet is counted, not only the first one read: no roster, directory or needs
    list has a sheet that long, and telling the first sheet apart needs two more parts.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            parts = archive.infolist()
            if sum(info.file_size for info in parts) > MAX_XLSX_BYTES:
                message = f"expands to over {MAX_XLSX_BYTES // 2**20} MB uncompressed"
                raise Invalid("the workbook is too large", [{"field": "file", "message": message}])
            names = {info.filename for info in parts}
            if "xl/workbook.xml" not in names:
                kind = "an OpenDocument file (.ods)" if "content.xml" in names else "a zip"
                raise Invalid(f"the file is {kind}, not an xlsx workbook: save it as xlsx")
            sheets = [
                info.filename
                for info in parts
                if info.filename.startswith("xl/worksheets/") and info.filename.endswith(".xml")
            ]
            if any(_sheet_rows_past(archive, name, max_rows + 1) for name in sheets):
                raise too_many_rows(max_rows)  # max_rows + 1: the header is a row too
    except zipfile.BadZipFile:
        raise Invalid("the workbook cannot be read (BadZipFile)") from None


def _sheet_rows_past(archive: zipfile.ZipFile, path: str, cap: int) -> bool:
    """Whether the sheet at ``path`` has more than ``cap`` rows, by scanning its XML for
    row elements as it inflates (a hundred times faster than parsing the cells) and
    stopping as soon as the cap is passed."""
    rows, tail = 0, b""
    with archive.open(path) as sheet:
        while chunk := sheet.read(1 << 20):
            window = tail + chunk
            rows += len(_ROW_TAG.findall(window)) - len(_ROW_TAG.findall(tail))
            if rows > cap:
                return True
            tail = window[-16:]
    return False


def _workbook_rows(data: bytes, max_rows: int) -> Iterator[list[str]]:
    """The first sheet's rows, from row 1 (calamine keeps the blank rows above the data, so
    numbers stay as the spreadsheet shows them). An xlsx is bounded by :func:`_check_xlsx`
    before it is opened, an xls by its size; the sheet's height is checked before any row
    is used (a backstop for xlsx, the row cap for xls)."""
    if data.startswith(XLSX_MAGIC):
        _check_xlsx(data, max_rows)
    elif len(data) > MAX_XLS_BYTES:
        message = f"over {MAX_XLS_BYTES // 2**20} MB"
        raise Invalid("the workbook is too large", [{"field": "file", "message": message}])
    try:
        with CalamineWorkbook.from_filelike(io.BytesIO(data)) as workbook:
            sheet = workbook.get_sheet_by_index(0)
    except Exception as exc:  # a damaged, encrypted or foreign file: say so, not a traceback
        raise Invalid(f"the workbook cannot be read ({type(exc).__name__})") from None
    if sheet.height > max_rows + 1:  # from its first row that is not blank; + 1: the header
        raise too_many_rows(max_rows)
    for row in sheet.iter_rows():
        yield [_cell(v) for v in row]


def _csv_rows(data: bytes, max_rows: int) -> Iterator[list[str]]:
    text = decode_csv(data)
    # Counted first (a quick pass over text already in memory), so a file over the cap is
    # refused before its first row is used.
    reader = csv.reader(io.StringIO(text))
    try:
        for number, _ in enumerate(reader):
            if number > max_rows:
                raise too_many_rows(max_rows)
    except csv.Error as exc:  # a NUL byte, a quote left open at the end of the file
        message = f"line {reader.line_num}: {exc}"
        raise Invalid(
            f"the file cannot be read as CSV ({message})", [{"field": "file", "message": message}]
        ) from None
    return ([c.strip() for c in row] for row in csv.reader(io.StringIO(text)))


def read_table(data: bytes, aliases: dict[str, str], max_rows: int = MAX_ROWS) -> Table:
    """The header (mapped to canonical names through ``aliases``; the first row that is not
    blank) and the numbered rows.

    A file of more than ``max_rows`` rows below the header is refused here, whole, with
    :func:`too_many_rows`; the rows are also counted as they are read, as a backstop.
    """
    if data.startswith((XLSX_MAGIC, XLS_MAGIC)):
        raw_rows: Iterator[list[str]] = _workbook_rows(data, max_rows)
    else:
        raw_rows = _csv_rows(data, max_rows)
    numbered = enumerate(raw_rows, start=1)
    # The header is the first row that is not blank (blank rows above it keep their numbers).
    header_row, first = next(((n, v) for n, v in numbered if any(v)), (0, []))
    if not header_row:
        raise Invalid("the file is empty")
    header = [aliases.get(h.strip().lstrip("\ufeff"), h.strip()) for h in first]
    twice = sorted({h for h in header if h and header.count(h) > 1})
    if twice:
        message = f"row {header_row}: the column {twice[0]} appears twice; keep one"
        raise Invalid(
            f"the header names {', '.join(twice)} more than once",
            [{"field": "file", "message": message}],
        )

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        for number, values in numbered:
            if number - header_row > max_rows:
                raise too_many_rows(max_rows)
            if not any(values):
                continue  # blank lines Excel leaves behind
            yield number, {h: (values[i] if i < len(values) else "") for i, h in enumerate(header)}

    return Table(header, rows())
