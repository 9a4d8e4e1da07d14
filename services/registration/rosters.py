"""花名册 — a unit registers all its members at once from one spreadsheet.

Every row is checked by the rules of a member's own registration. Good rows land in chunks,
one transaction each (:mod:`services.registration.roster_writer`: what
:func:`enrolment.add_members` writes, by COPY on PostgreSQL), so a crash keeps what
committed and a re-run adds only the rest; the next chunk is read and checked while one
lands. A row whose ID number is registered already — in
the database or earlier in the file — is a duplicate, not an error. A rejected row is kept
sealed, so the unit gets it back with the reason (``errors.xlsx``) and re-uploads it fixed:
the first :data:`MAX_ERRORS` of them (``rejected`` counts them all), which is enough to
see what went wrong and keeps a broken file of 200,000 rows from filling the database.

专长 is free text: words that map to no skill never reject a row; they are kept as the
member's own words and the landed row gets a note (the first :data:`MAX_ERRORS` kept,
``noted`` counts them all).

A file of more than :data:`shared.tabular.MAX_ROWS` rows is refused whole at upload, before
any row lands.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import re
import uuid
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from itertools import islice
from typing import Any

from sqlalchemy import String, any_, bindparam, delete, insert, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.registration import roster_writer
from services.registration.enrolment import Directory, Error, MemberValues
from services.registration.enrolment import validate_member as validate
from services.registration.models import Member, Roster, RosterError, RosterNote, Unit
from shared.auth import Principal
from shared.db import UnitOfWork
from shared.http import Invalid, NotFound
from shared.pii import Sealer
from shared.tabular import MAX_ERRORS, XLS_MAGIC, XLSX_MAGIC, read_table

log = logging.getLogger(__name__)

IMPORT_TASK = "registration.import_roster"
ROW_CONTEXT = "roster-row"
FILE_CONTEXT = "roster-file"
CHUNK = 2000
#: The template's columns, in the order docs/contract.md lists them: (field, header).
COLUMNS: tuple[tuple[str, str], ...] = (
    ("name", "姓名"),
    ("id_number", "身份证号"),
    ("phone", "手机号"),
    ("email", "电子邮箱"),
    ("residence_community_code", "居住社区代码"),
    ("skills", "专长"),
    ("is_leader_cadre", "是否县处级以上领导干部"),
)
LABELS = dict(COLUMNS)
REQUIRED = ("name", "id_number", "phone", "residence_community_code")
#: Columns kept as text in the workbooks we hand out, so Excel keeps every digit.
TEXT_FIELDS = ("id_number", "phone", "residence_community_code")
ALIASES: dict[str, str] = {
    **{name: name for name, _ in COLUMNS},
    **{header: name for name, header in COLUMNS},
    "身份证号码": "id_number",
    "公民身份号码": "id_number",
    "手机号码": "phone",
    "联系电话": "phone",
    "邮箱": "email",
    "居住社区": "residence_community_code",
}
_FLAGS = {"是": True, "y": True, "yes": True, "true": True, "1": True,
          "否": False, "n": False, "no": False, "false": False, "0": False, "": False}  # fmt: skip
_AS_NUMBER = re.compile(r"^\d(\.\d+)?[eE]\+?\d+$")


def field_of(header: str) -> str | None:
    """The field a header names (Chinese or English, any case), or None for other columns."""
    key = header.strip().lstrip("\ufeff")
    return ALIASES.get(key) or ALIASES.get(key.lower())


@dataclass(frozen=True)
class Layout:
    """Which column of the file holds which field (headers as the file spells them)."""

    headers: list[str]
    columns: dict[str, str]  # field → header


def layout(header: list[str]) -> Layout:
    """Map a header row to fields; refuse one that lacks a required column."""
    columns: dict[str, str] = {}
    for text in header:
        name = field_of(text)
        if name is not None and name in columns:
            message = f"{columns[name]} and {text} are the same column"
            raise Invalid("the header names a column twice", [{"field": name, "message": message}])
        if name is not None:  # other columns (a note, 错误原因) are ignored
            columns[name] = text
    missing = [f for f in REQUIRED if f not in columns]
    if missing:
        raise Invalid(
            "the first row must be the header; it lacks required columns",
            [{"field": f, "message": f"no {LABELS[f]} ({f}) column"} for f in missing],
        )
    return Layout(list(header), columns)


def open_table(data: bytes) -> tuple[Layout, Iterator[tuple[int, dict[str, str]]]]:
    """The file's layout and its numbered rows; :class:`Invalid` when it cannot be read."""
    try:
        table = read_table(data, {})
    except Invalid:
        raise
    except Exception as exc:  # a damaged workbook: zip, XML or cell errors
        raise Invalid(
            f"the file cannot be read as xlsx, xls or CSV ({type(exc).__name__})"
        ) from None
    return layout(table.header), table.rows


def estimate_rows(data: bytes) -> int:
    """About how many data rows ``data`` holds, for a progress bar."""
    if data.startswith(XLS_MAGIC):  # binary records: about 150 bytes a roster row
        return max(len(data) // 150, 1)
    if not data.startswith(XLSX_MAGIC):
        return max(data.count(b"\n") - 1, 1)
    try:  # the first sheet's <dimension ref="A1:G10001"/>, near the start of its XML
        with zipfile.ZipFile(io.BytesIO(data)) as z, z.open("xl/worksheets/sheet1.xml") as f:
            found = re.search(rb'<dimension ref="[A-Z]+\d+:[A-Z]+(\d+)"', f.read(4096))
    except (KeyError, zipfile.BadZipFile):
        found = None
    return max(int(found.group(1)) - 1, 1) if found else max(len(data) // 60, 1)


def leader_flag(text: str) -> bool:
    """是否县处级以上领导干部: 是/否, Y/N, true/false, 1/0; blank is 否."""
    try:
        return _FLAGS[text.strip().lower()]
    except KeyError:
        raise ValueError("must be 是 or 否") from None


@dataclass
class Checked:
    """One row after validation: the member's values and ID hash, or why not."""

    row: int
    values: MemberValues | None
    digest: str | None
    errors: list[Error]
    cells: list[list[str]]  # the row as the file had it, kept (sealed) when rejected
    notes: list[Error] = field(default_factory=list)  # for the unit, should the row land


def check_row(
    number: int, row: dict[str, str], lay: Layout, unit_code: str, directory: Directory,
    today: date, sealer: Sealer,
) -> Checked:  # fmt: skip
    raw: dict[str, Any] = {f: row.get(h, "") for f, h in lay.columns.items()}
    raw["unit_code"] = unit_code
    flag: list[Error] = []
    try:
        raw["is_leader_cadre"] = leader_flag(raw.get("is_leader_cadre", ""))
    except ValueError as exc:
        flag.append({"field": "is_leader_cadre", "message": str(exc)})
    values, errors = validate(raw, directory, today, need_consent=False)
    for error in errors:
        if error["field"] == "id_number" and _AS_NUMBER.match(str(raw["id_number"])):
            error["message"] = "stored as a number, so Excel kept only 15 digits: format as text"
    errors += flag
    if values is None or errors:
        return Checked(number, None, None, errors, [[h, row.get(h, "")] for h in lay.headers])
    notes = [skills_note(values.skills_other)] if values.skills_other else []
    return Checked(number, values, sealer.digest(values.id_number), [], [], notes)


def skills_note(own_words: list[str]) -> Error:
    """The note on a row whose 专长 has words that map to no skill."""
    words = "、".join(own_words)
    return {"field": "skills", "message": f"not in the skills list, kept as own words: {words}"}


@dataclass
class Summary:
    """What an import did, so far or in the end."""

    status: str
    total: int = 0
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    noted: int = 0
    detail: str | None = None
    seen: set[str] = field(default_factory=set, repr=False)  # ID hashes met in the file

    def counts(self) -> dict[str, int]:
        keys = ("total", "accepted", "rejected", "duplicates", "noted")
        return {k: getattr(self, k) for k in keys}


def unit_in_scope(uow: UnitOfWork, code: str, principal: Principal) -> Unit:
    """The unit a caller uploads a roster for: 404 when unknown or outside the caller's
    scope, 422 when closed."""
    unit = uow.session.get(Unit, code)
    if unit is None or not principal.covers(districts={unit.district_code}, units={unit.code}):
        raise NotFound(f"no unit {code}")  # out of scope looks like absent
    return unit_for(uow, code)  # and open today


def visible_roster(uow: UnitOfWork, roster_id: uuid.UUID, principal: Principal) -> Roster:
    """The roster, or 404 when unknown or its unit is outside the caller's scope."""
    roster = uow.session.get(Roster, roster_id)
    unit = uow.session.get(Unit, roster.unit_code) if roster is not None else None
    if (
        roster is None
        or unit is None
        or not principal.covers(districts={unit.district_code}, units={unit.code})
    ):
        raise NotFound(f"no roster {roster_id}")  # out of scope looks like absent
    return roster


def unit_for(uow: UnitOfWork, code: str) -> Unit:
    """The roster's unit, open today."""
    unit = uow.session.get(Unit, code)
    if unit is None:
        raise NotFound(f"no unit {code}")
    if unit.valid_to is not None and unit.valid_to < uow.now().date():
        raise Invalid("the unit is closed", [{"field": "unit_code", "message": "unit is closed"}])
    return unit


def create_roster(
    uow: UnitOfWork, unit: Unit, filename: str, data: bytes, sealer: Sealer
) -> Roster:
    """Keep an upload, sealed, for import; one that is unreadable, lacks columns or has more
    than :data:`shared.tabular.MAX_ROWS` rows is refused now (reading the header counts the
    rows). It holds ID numbers and phones, so it is never stored in clear."""
    open_table(data)
    roster = Roster(
        id=uuid.uuid4(),
        unit_code=unit.code,
        filename=filename[-255:],
        content_sha256=hashlib.sha256(data).hexdigest(),
        content=sealer.seal(base64.b64encode(data).decode(), FILE_CONTEXT).encode(),
        status="running",
        created_at=uow.now(),
    )
    uow.session.add(roster)
    return roster


def import_roster(
    roster_id: uuid.UUID,
    uow_factory: Callable[[], UnitOfWork],
    sealer: Sealer,
    progress: Callable[[int], Any] | None = None,
    chunk: int = CHUNK,
) -> Summary:
    """Import a stored roster. On a finished one it does nothing; on a half-done one (a
    worker died) it counts again what landed and adds the rest."""
    with uow_factory() as uow:
        roster = uow.session.get(Roster, roster_id)
        if roster is None:
            raise NotFound(f"no roster {roster_id}")
        if roster.status != "running" or roster.content is None:
            done = Summary(roster.status, detail=roster.detail)
            done.total, done.accepted = roster.total, roster.accepted
            done.rejected, done.duplicates = roster.rejected, roster.duplicates
            done.noted = roster.noted
            return done
        data = base64.b64decode(sealer.open(roster.content.decode(), FILE_CONTEXT))
        unit_code, today = roster.unit_code, uow.now().date()
        directory = Directory(uow.session, preload=True)
        uow.session.execute(delete(RosterError).where(RosterError.roster_id == roster_id))
        uow.session.execute(delete(RosterNote).where(RosterNote.roster_id == roster_id))
        uow.commit()
    summary = Summary("running")
    try:
        lay, rows = open_table(data)
    except Invalid as exc:
        detail = "; ".join([exc.detail, *(f"{e['field']}: {e['message']}" for e in exc.errors)])
        return finish(roster_id, uow_factory, summary, "failed", detail)
    # While one chunk lands (a thread of its own, mostly waiting on the database), the next
    # is read and checked here; chunks still land one at a time and in order.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="roster-land") as lander:
        landing: Future[None] | None = None
        size = 0

        def landed() -> None:
            """Wait for the chunk in flight (its error is raised here), then report it."""
            nonlocal landing
            if landing is not None:
                landing.result()
                landing = None
                if progress is not None:
                    progress(size)

        while True:
            try:
                batch = list(islice(rows, chunk))
            except Invalid as exc:  # past the row cap (counted at upload; a backstop here)
                landed()
                return finish(roster_id, uow_factory, summary, "failed", exc.detail)
            except Exception as exc:  # the file breaks off part-way: what landed stays
                landed()
                detail = (
                    f"the file cannot be read after {summary.total} rows ({type(exc).__name__})"
                )
                return finish(roster_id, uow_factory, summary, "failed", detail)
            if not batch:
                landed()
                return finish(roster_id, uow_factory, summary, "done", None)
            checked = [check_row(n, r, lay, unit_code, directory, today, sealer) for n, r in batch]
            landed()
            landing = lander.submit(
                _land, roster_id, checked, uow_factory, sealer, directory, summary
            )
            size = len(batch)


def _registered(session: Session, digests: list[str]) -> dict[str, uuid.UUID | None]:
    """Which ID numbers (by HMAC) are registered already, and from which roster."""
    if session.get_bind().dialect.name == "postgresql":  # one query: = ANY(array)
        wanted = bindparam("digests", digests, type_=postgresql.ARRAY(String))
        query = select(Member.id_number_hmac, Member.roster_id).where(
            Member.id_number_hmac == any_(wanted)
        )
        return {h: r for h, r in session.execute(query).tuples() if h}
    found: dict[str, uuid.UUID | None] = {}
    for start in range(0, len(digests), 1000):
        query = select(Member.id_number_hmac, Member.roster_id).where(
            Member.id_number_hmac.in_(digests[start : start + 1000])
        )
        found |= {h: r for h, r in session.execute(query).tuples() if h}
    return found


def _land(
    roster_id: uuid.UUID,
    checked: list[Checked],
    uow_factory: Callable[[], UnitOfWork],
    sealer: Sealer,
    directory: Directory,
    summary: Summary,
) -> None:
    """One chunk in one transaction: its new members, its rejected rows, the counts so far.

    If another import commits one of these ID numbers meanwhile, the unique HMAC refuses
    the insert; the chunk is then sorted again against what is registered now.
    """
    for attempt in range(3):
        counts = {"accepted": 0, "rejected": 0, "duplicates": 0, "noted": 0}
        fresh: list[tuple[MemberValues, str]] = []
        seen: set[str] = set()
        failures: list[dict[str, Any]] = []
        notes: list[dict[str, Any]] = []
        try:
            with uow_factory() as uow:
                known = _registered(uow.session, [c.digest for c in checked if c.digest])
                for c in checked:
                    if c.digest is None or c.values is None:
                        counts["rejected"] += 1
                        if summary.rejected + counts["rejected"] > MAX_ERRORS:
                            continue  # counted, not kept: the first ones are enough
                        sealed = sealer.seal_json({"cells": c.cells}, ROW_CONTEXT)
                        failures += [{"roster_id": roster_id, "row": c.row, "row_sealed": sealed,
                                      "field": e["field"], "message": e["message"][:500]}
                                     for e in c.errors]  # fmt: skip
                    elif c.digest in summary.seen or c.digest in seen:
                        counts["duplicates"] += 1
                    elif c.digest in known:  # on a re-run, this roster's own rows count again
                        landed = known[c.digest] == roster_id
                        counts["accepted" if landed else "duplicates"] += 1
                        if landed:
                            notes += _noted(roster_id, c, summary.noted + counts["noted"])
                            counts["noted"] += bool(c.notes)
                    else:
                        fresh.append((c.values, c.digest))
                        counts["accepted"] += 1
                        notes += _noted(roster_id, c, summary.noted + counts["noted"])
                        counts["noted"] += bool(c.notes)
                    if c.digest is not None:
                        seen.add(c.digest)
                roster_writer.write(
                    uow, roster_writer.rows_for(fresh, uow, sealer, directory, roster_id)
                )
                if failures:
                    uow.session.execute(insert(RosterError), failures)
                if notes:
                    uow.session.execute(insert(RosterNote), notes)
                so_far = {k: getattr(summary, k) + v for k, v in counts.items()}
                so_far["total"] = summary.total + len(checked)
                uow.session.execute(update(Roster).where(Roster.id == roster_id).values(so_far))
                uow.commit()
        except IntegrityError:
            if attempt == 2:
                raise
            log.warning("roster %s: an ID number was registered meanwhile; retrying", roster_id)
            continue
        for key, value in so_far.items():
            setattr(summary, key, value)
        summary.seen |= seen
        return


def _noted(roster_id: uuid.UUID, checked: Checked, so_far: int) -> list[dict[str, Any]]:
    """The rows of ``roster_notes`` for a landed row; none past the first MAX_ERRORS rows."""
    if so_far >= MAX_ERRORS:
        return []  # counted, not kept, as rejected rows are
    return [{"roster_id": roster_id, "row": checked.row, "field": n["field"],
             "message": n["message"][:500]} for n in checked.notes]  # fmt: skip


def finish(
    roster_id: uuid.UUID,
    uow_factory: Callable[[], UnitOfWork],
    summary: Summary,
    status: str,
    detail: str | None,
) -> Summary:
    """Record the outcome and drop the uploaded file: it is kept no longer than needed."""
    with uow_factory() as uow:
        values = {"status": status, "detail": detail, "content": None, "finished_at": uow.now()}
        uow.session.execute(
            update(Roster).where(Roster.id == roster_id).values(values | summary.counts())
        )
        uow.commit()
    summary.status, summary.detail = status, detail
    log.info("roster %s %s: %s", roster_id, status, summary.counts())
    return summary


def _lines_of(
    model: type[RosterError] | type[RosterNote],
    session: Session,
    roster_id: uuid.UUID,
    limit: int | None,
) -> list[dict[str, Any]]:
    query = (
        select(model.row, model.field, model.message)
        .where(model.roster_id == roster_id)
        .order_by(model.row, model.id)
        .limit(limit)
    )
    return [{"row": r, "field": f, "message": m} for r, f, m in session.execute(query).tuples()]


def errors_of(
    session: Session, roster_id: uuid.UUID, limit: int | None = None
) -> list[dict[str, Any]]:
    """The roster's rejected rows as ``{row, field, message}``, in file order."""
    return _lines_of(RosterError, session, roster_id, limit)


def notes_of(
    session: Session, roster_id: uuid.UUID, limit: int | None = None
) -> list[dict[str, Any]]:
    """The notes on the roster's landed rows as ``{row, field, message}``, in file order."""
    return _lines_of(RosterNote, session, roster_id, limit)
