"""花名册 — a unit registers all its members at once from one spreadsheet.

Every row is checked by the same rules as a member's own registration; the good rows land
in chunks (one transaction and one :func:`handlers.add_members` call each), so a crash keeps
what committed and a re-run adds only the rest. A row whose ID number is already registered
— in the database or earlier in the file — is a duplicate, not an error. A rejected row is
kept sealed so the unit can download it back with the reason (``errors.xlsx``).
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.registration.handlers import Directory, Error, MemberValues, add_members
from services.registration.handlers import validate_member as validate
from services.registration.models import Member, Roster, RosterError, Unit
from services.registration.tabular import XLSX_MAGIC, read_table
from shared.db import UnitOfWork
from shared.http import Invalid, NotFound
from shared.pii import Sealer

log = logging.getLogger(__name__)

IMPORT_TASK = "registration.import_roster"
ROW_CONTEXT = "roster-row"
CHUNK = 2000
#: The template's columns in DESIGN.md order: (field, header).
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
ALIASES: dict[str, str] = {
    **{f: f for f, _ in COLUMNS},
    **{h: f for f, h in COLUMNS},
    "身份证号码": "id_number",
    "公民身份号码": "id_number",
    "手机号码": "phone",
    "联系电话": "phone",
    "邮箱": "email",
    "居住社区": "residence_community_code",
}
_YES = {"是", "y", "yes", "true", "1"}
_NO = {"否", "n", "no", "false", "0", ""}
_AS_NUMBER = re.compile(r"^\d(\.\d+)?[eE]\+?\d+$")


@dataclass(frozen=True)
class Layout:
    """Which column of the file holds which field (headers as the file spells them)."""

    headers: list[str]
    columns: dict[str, str]  # field → header


def layout(header: list[str]) -> Layout:
    """Map a header row to fields; refuse a file that lacks a required column."""
    columns: dict[str, str] = {}
    for text in header:
        key = text.strip().lstrip("\ufeff")
        name = ALIASES.get(key) or ALIASES.get(key.lower())
        if name is None:
            continue  # an extra column (a note, a 错误原因 column) is ignored
        if name in columns:
            raise Invalid(
                "the header names a column twice",
                [{"field": name, "message": f"{columns[name]} and {text} are the same column"}],
            )
        columns[name] = text
    missing = [f for f in REQUIRED if f not in columns]
    if missing:
        raise Invalid(
            "the first row must be the header; it lacks required columns",
            [{"field": f, "message": f"no {LABELS[f]} ({f}) column"} for f in missing],
        )
    return Layout(list(header), columns)


def open_table(data: bytes) -> tuple[Layout, Iterator[tuple[int, dict[str, str]]]]:
    """The file's layout and its numbered rows; :class:`Invalid` if it cannot be read."""
    try:
        table = read_table(data, {})
    except Invalid:
        raise
    except Exception as exc:  # a damaged workbook: zip, XML or cell errors
        raise Invalid(f"the file cannot be read as xlsx or CSV ({type(exc).__name__})") from None
    return layout(table.header), table.rows


def estimate_rows(data: bytes) -> int:
    """About how many data rows ``data`` holds (for a progress bar; never exact)."""
    if data.startswith(XLSX_MAGIC):
        return max(len(data) // 60, 1)  # ~60 compressed bytes per roster row
    return max(data.count(b"\n") - 1, 1)


def leader_flag(text: str) -> bool:
    value = text.strip().lower()
    if value in _YES or value in _NO:
        return value in _YES
    raise ValueError("must be 是 or 否")


@dataclass
class Checked:
    """One row after validation: the member's values, or why not."""

    row: int
    values: MemberValues | None
    digest: str | None
    errors: list[Error]
    cells: list[list[str]]


def check_row(
    number: int, row: dict[str, str], lay: Layout, unit_code: str, directory: Directory,
    today: Any, sealer: Sealer,
) -> Checked:  # fmt: skip
    raw: dict[str, Any] = {f: row.get(h, "") for f, h in lay.columns.items()}
    raw["unit_code"] = unit_code
    errors: list[Error] = []
    try:
        raw["is_leader_cadre"] = leader_flag(raw.get("is_leader_cadre", ""))
    except ValueError as exc:
        errors.append({"field": "is_leader_cadre", "message": str(exc)})
    values, found = validate(raw, directory, today, need_consent=False)
    for error in found:
        if error["field"] == "id_number" and _AS_NUMBER.match(str(raw["id_number"])):
            error["message"] = "stored as a number, so Excel kept 15 digits: format as text"
    errors = found + errors
    digest = sealer.digest(values.id_number) if values is not None and not errors else None
    cells = [[h, row.get(h, "")] for h in lay.headers] if errors else []
    return Checked(number, None if errors else values, digest, errors, cells)


@dataclass
class Summary:
    """What an import did, so far or in the end."""

    status: str
    total: int = 0
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    detail: str | None = None
    seen: set[str] = field(default_factory=set, repr=False)

    def counts(self) -> dict[str, int]:
        return {
            "total": self.total,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "duplicates": self.duplicates,
        }


def unit_for(uow: UnitOfWork, code: str) -> Unit:
    """The roster's unit, open today."""
    unit = uow.session.get(Unit, code)
    if unit is None:
        raise NotFound(f"no unit {code}")
    if unit.valid_to is not None and unit.valid_to < uow.now().date():
        raise Invalid("the unit is closed", [{"field": "unit_code", "message": "unit is closed"}])
    return unit


def create_roster(uow: UnitOfWork, unit: Unit, filename: str, data: bytes) -> Roster:
    """Keep an upload for import; a file that is unreadable or lacks columns is refused now."""
    open_table(data)
    roster = Roster(
        id=uuid.uuid4(),
        unit_code=unit.code,
        filename=filename[-255:],
        content_sha256=hashlib.sha256(data).hexdigest(),
        content=data,
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
    """Import a stored roster; again on a finished one does nothing, on a half-done one
    it recounts what landed and adds the rest."""
    with uow_factory() as uow:
        roster = uow.session.get(Roster, roster_id)
        if roster is None:
            raise NotFound(f"no roster {roster_id}")
        if roster.status != "running" or roster.content is None:
            return Summary(roster.status, roster.total, roster.accepted, roster.rejected,
                           roster.duplicates, roster.detail)  # fmt: skip
        data, unit_code, today = roster.content, roster.unit_code, uow.now().date()
        directory = Directory(uow.session, preload=True)
        uow.session.execute(delete(RosterError).where(RosterError.roster_id == roster_id))
        uow.commit()
    summary = Summary("running")
    try:
        lay, rows = open_table(data)
    except Invalid as exc:
        return _finish(roster_id, uow_factory, summary, "failed", _describe(exc))
    while True:
        try:
            batch = list(islice(rows, chunk))
        except Exception as exc:  # the file breaks off part-way: keep what landed
            detail = f"the file cannot be read after row {summary.total + 1} ({type(exc).__name__})"
            return _finish(roster_id, uow_factory, summary, "failed", detail)
        if not batch:
            break
        checked = [check_row(n, r, lay, unit_code, directory, today, sealer) for n, r in batch]
        _land(roster_id, checked, uow_factory, sealer, directory, summary)
        if progress is not None:
            progress(len(batch))
    return _finish(roster_id, uow_factory, summary, "done", None)


def _describe(exc: Invalid) -> str:
    return "; ".join([exc.detail, *(f"{e['field']}: {e['message']}" for e in exc.errors)])


def _registered(session: Session, digests: list[str]) -> dict[str, uuid.UUID | None]:
    """Which ID numbers (by HMAC) are registered already, and by which roster."""
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
    """One chunk in one transaction: its new members, its errors, the running counts.

    Another import committing the same ID number in between makes the insert fail on the
    unique HMAC; the chunk is then sorted again against what is registered now.
    """
    for attempt in range(3):
        fresh: list[MemberValues] = []
        seen: set[str] = set()
        counts = {"accepted": 0, "rejected": 0, "duplicates": 0}
        try:
            with uow_factory() as uow:
                digests = [c.digest for c in checked if c.digest and c.digest not in summary.seen]
                known = _registered(uow.session, digests)
                failures: list[dict[str, Any]] = []
                for c in checked:
                    if c.errors:
                        counts["rejected"] += 1
                        sealed = sealer.seal_json({"cells": c.cells}, ROW_CONTEXT)
                        failures += [{"roster_id": roster_id, "row": c.row, "field": e["field"],
                                      "message": e["message"][:500], "row_sealed": sealed}
                                     for e in c.errors]  # fmt: skip
                        continue
                    assert c.digest is not None and c.values is not None
                    if c.digest in summary.seen or c.digest in seen:
                        counts["duplicates"] += 1
                    elif c.digest in known:  # this roster's own row on a re-run is accepted
                        counts["accepted" if known[c.digest] == roster_id else "duplicates"] += 1
                    else:
                        fresh.append(c.values)
                        counts["accepted"] += 1
                    seen.add(c.digest)
                add_members(fresh, uow, sealer, directory, roster_id)
                if failures:
                    uow.session.execute(insert(RosterError), failures)
                uow.session.execute(
                    update(Roster)
                    .where(Roster.id == roster_id)
                    .values(
                        total=summary.total + len(checked),
                        **{k: getattr(summary, k) + v for k, v in counts.items()},
                    )
                )
                uow.commit()
        except IntegrityError:
            if attempt == 2:
                raise
            log.warning("roster %s: a concurrent registration; sorting the chunk again", roster_id)
            continue
        summary.total += len(checked)
        for key, value in counts.items():
            setattr(summary, key, getattr(summary, key) + value)
        summary.seen |= seen
        return


def _finish(
    roster_id: uuid.UUID,
    uow_factory: Callable[[], UnitOfWork],
    summary: Summary,
    status: str,
    detail: str | None,
) -> Summary:
    """Record the outcome and drop the uploaded file (kept no longer than needed)."""
    with uow_factory() as uow:
        uow.session.execute(
            update(Roster)
            .where(Roster.id == roster_id)
            .values(status=status, detail=detail, content=None, finished_at=uow.now(),
                    **summary.counts())  # fmt: skip
        )
        uow.commit()
    summary.status, summary.detail = status, detail
    log.info("roster %s %s: %s", roster_id, status, summary.counts())
    return summary


def errors_of(
    session: Session, roster_id: uuid.UUID, limit: int | None = None
) -> list[dict[str, Any]]:
    """The roster's rejected rows as ``{row, field, message}``, in file order."""
    query = (
        select(RosterError.row, RosterError.field, RosterError.message)
        .where(RosterError.roster_id == roster_id)
        .order_by(RosterError.row, RosterError.id)
        .limit(limit)
    )
    return [{"row": r, "field": f, "message": m} for r, f, m in session.execute(query).tuples()]


def roster_view(roster: Roster, errors: list[dict[str, Any]], error_count: int) -> dict[str, Any]:
    return {
        "id": str(roster.id),
        "unit_code": roster.unit_code,
        "filename": roster.filename,
        "status": roster.status,
        "total": roster.total,
        "accepted": roster.accepted,
        "rejected": roster.rejected,
        "duplicates": roster.duplicates,
        "detail": roster.detail,
        "created_at": roster.created_at.isoformat(),
        "finished_at": roster.finished_at.isoformat() if roster.finished_at else None,
        "error_count": error_count,
        "errors": errors,
    }
