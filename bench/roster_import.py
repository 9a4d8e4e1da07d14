"""Roster import speed: set-based (花名册) against registering members one by one.

In one run, on a fresh database: import ``--rows`` roster rows through
:func:`services.registration.rosters.import_roster` (chunks of bulk inserts), then register
``--baseline`` other members one at a time through the bus (``RegisterMember``, as an
admin), one transaction each (what a loop over the API would do). Prints rows/s for both
and the ratio.

    .venv/bin/python bench/roster_import.py                 # embedded: SQLite
    .venv/bin/python bench/roster_import.py --postgres      # PostgreSQL on 127.0.0.1

Nothing is asserted: the figures go in the issue, not in a test.
"""

from __future__ import annotations

import argparse
import csv
import io
import secrets
import shutil
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from services.demo_data import SAMPLE_DIRECTORY
from services.registration import directory, rosters
from services.registration.bootstrap import bootstrap
from services.registration.commands import RegisterMember
from services.registration.models import Base
from services.registration.rules import check_character
from shared.auth import Principal
from shared.config import load
from shared.migrations import upgrade
from shared.runtime import Runtime, build

UNIT = "U410300001"  # a city-level unit with a contact community: three registrations each
COMMUNITIES = ["410303001001", "410305001002", "410303002001"]


def member(i: int) -> dict[str, Any]:
    """Member number ``i``: a valid, unique ID number (up to 12 million of them)."""
    born = date(1960, 1, 1) + timedelta(days=i % 12_000)
    body = f"410303{born:%Y%m%d}{i // 12_000:03d}"
    return {
        "name": "王李张刘陈"[i % 5] + "建国秀英志强丽华"[i % 8] + "海燕文博"[i % 4],
        "id_number": body + check_character(body),
        "phone": f"138{i % 10**8:08d}",
        "email": f"m{i}@example.cn" if i % 3 == 0 else "",
        "residence_community_code": COMMUNITIES[i % 3],
        "skills": "医疗护理、法律咨询" if i % 2 else "",
        "is_leader_cadre": "是" if i % 50 == 0 else "否",
    }


def roster_file(rows: int, fmt: str) -> bytes:
    table = [[h for _, h in rosters.COLUMNS]]
    table += [[member(i)[f] for f, _ in rosters.COLUMNS] for i in range(rows)]
    if fmt == "xlsx":
        book = Workbook(write_only=True)
        sheet = book.create_sheet("花名册")
        for row in table:
            sheet.append(row)
        out = io.BytesIO()
        book.save(out)
        return out.getvalue()
    text_out = io.StringIO()
    csv.writer(text_out).writerows(table)
    return text_out.getvalue().encode("gbk")


def set_based(rt: Runtime, data: bytes, chunk: int) -> tuple[float, rosters.Summary]:
    with rt.uow() as uow:
        unit = rosters.unit_for(uow, UNIT)
        roster_id = rosters.create_roster(uow, unit, "bench", data, rt.sealer).id
        uow.commit()
    started = time.perf_counter()
    summary = rosters.import_roster(roster_id, rt.uow, rt.sealer, chunk=chunk)
    return time.perf_counter() - started, summary


def one_by_one(rt: Runtime, first: int, count: int) -> float:
    bus, admin = bootstrap(runtime=rt), Principal(role="admin", scope="city")
    started = time.perf_counter()
    for i in range(first, first + count):
        raw = member(i) | {"unit_code": UNIT, "consent": True}
        raw["skills"] = [s for s in str(raw["skills"]).split("、") if s]
        raw["is_leader_cadre"] = raw["is_leader_cadre"] == "是"
        bus.handle(RegisterMember(principal=admin, values=raw))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000, help="roster rows (set-based)")
    parser.add_argument("--baseline", type=int, default=500, help="members one by one")
    parser.add_argument("--chunk", type=int, default=rosters.CHUNK, help="rows per transaction")
    parser.add_argument("--format", choices=("csv", "xlsx"), default="csv")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL instead of SQLite")
    parser.add_argument(
        "--postgres-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        help="a server to create (and drop) a throw-away database on",
    )
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="roster-bench-"))
    env = {
        "SERVICEMONTH_HOME": str(home),
        "SERVICEMONTH_PII_KEY": secrets.token_hex(32),
        "SERVICEMONTH_LOG_LEVEL": "WARNING",
    }
    if args.postgres:
        base = make_url(args.postgres_url).set(database=f"bench_{secrets.token_hex(4)}")
        env["SERVICEMONTH_DATABASE_URL"] = base.render_as_string(hide_password=False)
    rt = build("registration", Base.metadata, load(env))
    try:
        upgrade("registration", rt.db)
        with rt.uow() as uow:
            directory.load(SAMPLE_DIRECTORY.read_bytes(), uow)
            uow.commit()
        data = roster_file(args.rows, args.format)
        bulk, summary = set_based(rt, data, args.chunk)
        assert summary.accepted == args.rows, summary
        single = one_by_one(rt, args.rows, args.baseline)
    finally:
        rt.db.dispose()
        shutil.rmtree(home, ignore_errors=True)
        if args.postgres:
            drop(args.postgres_url, make_url(rt.db.url).database or "")
    backend = "PostgreSQL" if args.postgres else "SQLite (embedded)"
    fast, slow = args.rows / bulk, args.baseline / single
    print(f"backend: {backend}, roster format: {args.format}, chunk: {args.chunk} rows")
    for label, rows, seconds in (
        ("set-based roster import", args.rows, bulk),
        ("one by one (baseline)", args.baseline, single),
    ):
        print(f"{label:<24} {rows:>7} rows in {seconds:7.2f} s = {rows / seconds:8.0f} rows/s")
    print(f"ratio: {fast / slow:.1f}x")


def drop(admin_url: str, database: str) -> None:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
    engine.dispose()


if __name__ == "__main__":
    main()
