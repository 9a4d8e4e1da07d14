"""Reading the spreadsheets people bring — moved to :mod:`shared.tabular`, where pairing's
bulk uploads read them too; re-exported here for registration's imports."""

from __future__ import annotations

from shared.tabular import XLS_MAGIC, XLSX_MAGIC, Table, decode_csv, read_table

__all__ = ["XLSX_MAGIC", "XLS_MAGIC", "Table", "decode_csv", "read_table"]
