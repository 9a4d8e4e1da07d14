"""Roster import (花名册) against parsing, sealing and COPYing the same rows.

Issue 15's target: "roster import, csv and xlsx, 200,000 rows, full validation — vs
parse + seal + COPY of the same rows: ≤ 2× time".

The rows: every member of ``ctx.city`` (``ctx.members()``: 200,000 at scale 1) as one
roster of one unit (a city-level unit with a contact community when there is one, so each
member gets three registrations where the city has them), in the city's own cells
(``citygen.roster_cells``), written as UTF-8 CSV and as xlsx (``citygen.xlsx_bytes``).

- **ours**: :func:`services.registration.rosters.import_roster` on a freshly migrated
  database holding the city's directory: full validation, duplicate checks, sealing, the
  members, their registrations and their ``member.registered`` events in the outbox, in
  chunks committed with the roster's counts. The upload (``create_roster``: the file
  sealed) is not timed. Checked before any speed is reported: every row accepted, and
  the database holds exactly the members, registrations and outbox rows expected.
- **baseline**: the same file parsed (the csv module; for xlsx calamine, the reader the
  product uses, which is faster than openpyxl's read-only mode), the same fields sealed
  with the same sealer (ID number, phone, e-mail, the events' sealed contact) and hashed,
  and the same members, registrations and outbox rows COPYed (psycopg 3) into the same
  tables of a second throw-away database, in one transaction; no validation, no look-ups.

PostgreSQL is the target. SQLite (embedded) is reported as a figure of its own.

    .venv/bin/python bench/roster_import.py --scale 0.01 [--embedded]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from itertools import islice
from typing import Any

import citygen
import harness
import psycopg
from python_calamine import CalamineWorkbook
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from services.registration import directory, rosters
from services.registration.enrolment import Directory
from services.registration.models import Base, CommunityRegistration, Member
from shared.config import load
from shared.db import outbox_table
from shared.migrations import upgrade
from shared.pii import Sealer, mask_id_number, mask_name, mask_phone
from shared.runtime import Runtime, build

FORMATS = ("csv", "xlsx")


# --- the rows ---------------------------------------------------------------------------


def roster_unit(city: citygen.City) -> citygen.Unit:
    """A city-level unit with a contact community (three registrations a member)."""
    for unit in city.units:
        if unit.level == "city" and unit.contact_community_code:
            return unit
    return city.units[0]


def roster_table(city: citygen.City) -> list[list[str]]:
    return [citygen.roster_header(), *(citygen.roster_cells(m) for m in city.members)]


def roster_file(table: list[list[str]], fmt: str) -> bytes:
    if fmt == "xlsx":
        return citygen.xlsx_bytes(table)
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(table)
    return out.getvalue().encode("utf-8")


def directory_file(city: citygen.City) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, citygen.DIRECTORY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(citygen.directory_rows(city))
    return out.getvalue().encode("utf-8")


def expected(city: citygen.City, unit: citygen.Unit) -> dict[str, int]:
    """Members, registrations and outbox rows the roster must leave behind."""
    registrations = outbox = 0
    for m in city.members:
        codes = {unit.community_code, m.residence_community_code}
        codes |= {unit.contact_community_code} if unit.contact_community_code else set()
        # one registration per role (unit, residence, contact), even when two share a code
        registrations += 2 + bool(unit.contact_community_code)
        outbox += len({c[:6] for c in codes})
    return {"members": len(city.members), "registrations": registrations, "outbox": outbox}


# --- ours -------------------------------------------------------------------------------


def runtime(ctx: harness.Context, backend: str, key: str, name: str) -> Runtime:
    """A migrated registration database holding the city's directory."""
    env = {
        "SERVICEMONTH_HOME": str(ctx.folder(name)),
        "SERVICEMONTH_PII_KEY": key,
        "SERVICEMONTH_LOG_LEVEL": "WARNING",
    }
    if backend == "postgresql":
        env["SERVICEMONTH_DATABASE_URL"] = ctx.database(name)
    rt = build("registration", Base.metadata, load(env))
    upgrade("registration", rt.db)
    with rt.uow() as uow:
        directory.load(directory_file(ctx.city), uow)
        uow.commit()
    return rt


def cpu_timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """Seconds ``fn`` took, of which this process's CPU (all its threads), and its value:
    the CPU time says what the path costs here, whatever else the machine is doing."""
    started = time.process_time()
    seconds, value = harness.timed(fn)
    return seconds, time.process_time() - started, value


def warm(rt: Runtime, unit: citygen.Unit, data: bytes) -> None:
    """Check the first rows untimed: what validation loads once per process (the table of
    region codes, the phone metadata) is loaded, as in a worker past its first roster."""
    lay, rows = rosters.open_table(data)
    with rt.read() as uow:
        directory = Directory(uow.session, preload=True)
        today = uow.now().date()
        for number, row in islice(rows, 100):
            rosters.check_row(number, row, lay, unit.code, directory, today, rt.sealer)


def ours(rt: Runtime, unit: citygen.Unit, data: bytes, fmt: str) -> tuple[float, float, Any]:
    warm(rt, unit, data)
    with rt.uow() as uow:
        roster_id = rosters.create_roster(
            uow, rosters.unit_for(uow, unit.code), f"roster.{fmt}", data, rt.sealer
        ).id
        uow.commit()
    return cpu_timed(lambda: rosters.import_roster(roster_id, rt.uow, rt.sealer))


def landed(rt: Runtime) -> dict[str, int]:
    outbox = outbox_table(rt.db.metadata)
    with rt.read() as uow:
        count = select(func.count())
        return {
            "members": uow.session.scalar(count.select_from(Member)) or 0,
            "registrations": uow.session.scalar(count.select_from(CommunityRegistration)) or 0,
            "outbox": uow.session.scalar(
                count.select_from(outbox).where(outbox.c.routing_key.like("%.member.registered"))
            )
            or 0,
        }


# --- the baseline -----------------------------------------------------------------------

MEMBER_COLUMNS = (
    "id", "state", "name", "id_number_sealed", "id_number_hmac", "id_number_masked",
    "phone_sealed", "phone_hmac", "phone_masked", "email_sealed", "unit_code",
    "residence_community_code", "skills", "skills_other", "availability", "is_leader_cadre",
    "roster_id", "consented_at", "created_at",
)  # fmt: skip
REGISTRATION_COLUMNS = (
    "id", "member_id", "community_code", "district_code", "role", "state", "created_at",
)  # fmt: skip
OUTBOX_COLUMNS = ("event_id", "routing_key", "body", "created_at")


def parsed(data: bytes, fmt: str) -> Iterator[list[str]]:
    """The data rows, cells as text: what parsing needs and no more."""
    if fmt == "xlsx":
        with CalamineWorkbook.from_filelike(io.BytesIO(data)) as book:
            rows = book.get_sheet_by_index(0).iter_rows()
            next(rows)
            for row in rows:
                yield ["" if v is None else str(v) for v in row]
        return
    rows = csv.reader(io.StringIO(data.decode("utf-8")))
    next(rows)
    yield from rows


def baseline(
    url: str, unit: citygen.Unit, data: bytes, fmt: str, sealer: Sealer
) -> tuple[float, float]:
    """Seconds to parse, seal and COPY the roster's members, registrations and events, and
    the CPU seconds of this process among them."""
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn) as conn:

        def run() -> None:
            now, roster_id = datetime.now(UTC), uuid.uuid4()
            members: list[tuple[Any, ...]] = []
            registrations: list[tuple[Any, ...]] = []
            outbox: list[tuple[Any, ...]] = []
            for name, id_number, phone, email, residence, skills, cadre in parsed(data, fmt):
                member_id = uuid.uuid4()
                words = json.dumps(skills.replace("、", " ").split(), ensure_ascii=False)
                members.append((
                    member_id, "active", name, sealer.seal(id_number, "id_number"),
                    sealer.digest(id_number), mask_id_number(id_number),
                    sealer.seal(phone, "phone"), sealer.digest(phone), mask_phone(phone),
                    sealer.seal(email, "email") if email else None, unit.code, residence,
                    words, "[]", "[]", cadre == "是", roster_id, now, now,
                ))  # fmt: skip
                refs = []
                for role, code in (
                    ("unit", unit.community_code),
                    ("residence", residence),
                    ("contact", unit.contact_community_code),
                ):
                    if code:
                        reg_id = uuid.uuid4()
                        registrations.append(
                            (reg_id, member_id, code, code[:6], role, "submitted", now)
                        )
                        refs.append({"registration_id": str(reg_id), "community_code": code,
                                     "role": role, "district": code[:6]})  # fmt: skip
                contact = {"name": name, "phone": phone, "email": email or None}
                payload = {
                    "member_id": str(member_id), "unit_code": unit.code,
                    "unit_district": unit.community_code[:6], "communities": refs,
                    "skills": [], "availability": [], "is_leader_cadre": cadre == "是",
                    "contact": {"sealed": sealer.seal_json(contact, "member-contact"),
                                "phone_masked": mask_phone(phone)},
                    "name_masked": mask_name(name),
                }  # fmt: skip
                for district in sorted({r["district"] for r in refs}):
                    event_id = uuid.uuid4()
                    body = {
                        "id": str(event_id), "type": "member.registered", "version": 1,
                        "occurred_at": now.isoformat(), "district": district,
                        "campaign": "bench", "producer": "registration",
                        "correlation_id": None, "payload": payload,
                    }  # fmt: skip
                    outbox.append(
                        (str(event_id), f"{district}.member.registered",
                         json.dumps(body, ensure_ascii=False), now)
                    )  # fmt: skip
            with conn.cursor() as cur:
                for table, columns, rows in (
                    ("members", MEMBER_COLUMNS, members),
                    ("community_registrations", REGISTRATION_COLUMNS, registrations),
                    ("outbox", OUTBOX_COLUMNS, outbox),
                ):
                    with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
            conn.commit()

        seconds, cpu, _ = cpu_timed(run)
    return seconds, cpu


# --- the measurement --------------------------------------------------------------------


def check(what: str, found: dict[str, int], wanted: dict[str, int]) -> None:
    if found != wanted:
        raise AssertionError(f"{what}: landed {found}, expected {wanted}")


def measure(ctx: harness.Context) -> list[harness.Result]:
    city = ctx.city
    unit = roster_unit(city)
    rows = len(city.members)
    wanted = expected(city, unit)
    table = roster_table(city)
    key = secrets.token_hex(32)
    sealer = Sealer(bytes.fromhex(key))
    note = f"{rows:,} members of the city as one roster of unit {unit.code}"
    results: list[harness.Result] = []
    backends = (["postgresql"] if ctx.postgres else []) + ["sqlite"]
    for fmt in FORMATS:
        data = roster_file(table, fmt)
        for backend in backends:
            rt = runtime(ctx, backend, key, f"roster_{fmt}_{backend[:2]}")
            try:
                seconds, cpu, summary = ours(rt, unit, data, fmt)
                if (summary.status, summary.accepted, summary.rejected) != ("done", rows, 0):
                    raise AssertionError(f"{fmt} on {backend}: {summary}")
                check(f"{fmt} on {backend}", landed(rt), wanted)
            finally:
                rt.db.dispose()
            if backend == "sqlite":
                results.append(
                    harness.absolute(
                        f"roster import, {fmt} (SQLite, embedded)", "rows/s", rows / seconds,
                        note=note,
                    )
                )  # fmt: skip
                continue
            base_rt = runtime(ctx, backend, key, f"roster_{fmt}_base")
            try:
                base, base_cpu = baseline(str(base_rt.db.url), unit, data, fmt, sealer)
                check(f"{fmt} baseline", landed(base_rt), wanted)
            finally:
                base_rt.db.dispose()
            results.append(
                harness.slower(
                    f"roster import, {fmt} (PostgreSQL)", "rows/s", rows / seconds,
                    rows / base, 2, note=f"{note}; baseline: parse + seal + COPY; CPU of this "
                    f"process {cpu / rows * 1e6:.0f} against {base_cpu / rows * 1e6:.0f} µs a "
                    f"row ({cpu / base_cpu:.2f}×)",
                )
            )  # fmt: skip
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--embedded", action="store_true", help="SQLite only, no PostgreSQL")
    args = parser.parse_args()
    postgres = None if args.embedded else harness.PG_ADMIN
    ctx = harness.Context(args.scale, args.seed, postgres=postgres)
    harness.show(ctx, measure)


if __name__ == "__main__":
    main()
