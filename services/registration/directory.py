"""The directory: divisions, communities and units, loaded from the operator's file.

Loading the same file again changes nothing. A renamed community keeps its code and the
old name in ``directory_changes``; a closed one keeps its row with ``valid_to`` set, so
history and earlier registrations stay readable. Every change is published
(``directory.*``) so other services keep their replicas.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from sqlalchemy import select

from services.registration.models import Community, DirectoryChange, Division, Unit
from shared.auth import Forbidden, Principal
from shared.config import CITY
from shared.db import UnitOfWork, commit_in_chunks
from shared.events import CommunityChanged, UnitChanged
from shared.http import Invalid
from shared.tabular import MAX_ERRORS, first_errors, read_table

#: The most a directory file may weigh (Luoyang's whole directory is well under 1 MB).
MAX_BYTES = 10 * 1024 * 1024
REQUIRED = ("kind", "code", "name", "parent_code")
ALIASES = {
    "类型": "kind",
    "代码": "code",
    "名称": "name",
    "上级代码": "parent_code",
    "级别": "level",
    "所属社区代码": "community_code",
    "联系帮扶社区代码": "contact_community_code",
    "启用日期": "valid_from",
    "停用日期": "valid_to",
    "办公电话": "phone",
    "联系电话": "phone",
}
#: An office number as people write it: 0379-63921234, (0379) 6392 1234, 12345, +86 …
OFFICE_PHONE = re.compile(r"[0-9+()（） -]{3,30}")


def _date(raw: str, field: str, row: int, errors: list[dict[str, str]]) -> date | None:
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        errors.append({"field": field, "row": str(row), "message": "use YYYY-MM-DD"})
        return None


def parse(data: bytes) -> list[tuple[int, dict[str, Any]]]:
    """Check the whole file first: one bad row and nothing is loaded (a directory is small
    and must be consistent)."""
    table = read_table(data, ALIASES)
    missing = [f for f in REQUIRED if f not in table.header]
    if missing:
        raise Invalid(
            "the directory file lacks columns",
            [{"field": f, "message": "column missing from the header"} for f in missing],
        )
    errors: list[dict[str, str]] = []
    rows: list[tuple[int, dict[str, Any]]] = []
    for number, row in table.rows:
        kind, code = row["kind"], row["code"]

        def bad(field: str, message: str, number: int = number) -> None:
            errors.append({"row": str(number), "field": field, "message": message})

        if kind not in ("district", "street", "community", "unit"):
            bad("kind", f"unknown kind {kind!r} (district, street, community, unit)")
            continue
        if not row["name"]:
            bad("name", "is required")
        if kind == "district" and not re.fullmatch(r"\d{6}", code):
            bad("code", "a county-level code has 6 digits")
        if kind == "street" and not re.fullmatch(r"\d{9}", code):
            bad("code", "a street/township code has 9 digits")
        if kind == "community" and not re.fullmatch(r"\d{12}", code):
            bad("code", "a community code has 12 digits")
        if kind == "unit":
            if not re.fullmatch(r"[\w-]{1,40}", code):
                bad("code", "letters, digits, '-' or '_', at most 40")
            if row.get("level", "county") not in ("city", "county", ""):
                bad("level", "city or county")
            if not re.fullmatch(r"\d{12}", row.get("community_code", "")):
                bad("community_code", "the unit's 12-digit community code is required")
        if kind == "community" and row.get("phone") and not OFFICE_PHONE.fullmatch(row["phone"]):
            bad("phone", "an office number: digits, spaces, '-', '+' or brackets, at most 30")
        values: dict[str, Any] = dict(row)
        values["valid_from"] = _date(row.get("valid_from", ""), "valid_from", number, errors)
        values["valid_to"] = _date(row.get("valid_to", ""), "valid_to", number, errors)
        rows.append((number, values))
    if errors:
        raise Invalid(
            f"the directory file has bad rows ({len(errors)} problems, the first "
            f"{min(len(errors), MAX_ERRORS)} listed); nothing was loaded",
            first_errors(errors),
        )
    return rows


def district_of(row: dict[str, Any]) -> str:
    """The district a row belongs to, as :func:`_upsert` stores it: a district row and a
    city-level unit belong to the city; a street or community by its code; a county-level
    unit by its parent code."""
    kind, code = row["kind"], row["code"]
    if kind == "district" or (kind == "unit" and (row.get("level") or "county") == "city"):
        return CITY
    if kind == "unit":
        return str(row["parent_code"] or "")[:6]
    return str(code)[:6]


def _check_scope(
    rows: list[tuple[int, dict[str, Any]]], uow: UnitOfWork, principal: Principal
) -> None:
    """A district operator loads and changes only its district's rows: a file with one row
    of another district, or of the city (districts, city-level units), is refused whole.
    A unit counts by where the file puts it and where it is now, so a unit cannot be
    moved into or out of the district either."""
    if principal.kind == "city":
        return
    refused = []
    for number, row in rows:
        districts = {district_of(row)}
        if row["kind"] == "unit" and (unit := uow.session.get(Unit, row["code"])) is not None:
            districts.add(unit.district_code)
        outside = sorted(d for d in districts if d != principal.code)
        if principal.kind != "district" or outside:
            where = "the city" if CITY in outside else f"district {', '.join(outside)}"
            message = f"a {row['kind']} of {where}: outside your scope {principal.scope}"
            refused.append({"row": str(number), "field": "code", "message": message})
    if refused:
        raise Forbidden(
            f"{len(refused)} rows are outside your scope; nothing was loaded",
            first_errors(refused),
        )


def load(data: bytes, uow: UnitOfWork, principal: Principal | None = None) -> dict[str, int]:
    """Upsert the file's rows; return counts of added, changed and unchanged rows.

    ``principal`` is who loads it over HTTP (the command line runs with the city's
    authority): outside the city, every row must lie in its district.

    The whole file is checked before anything is written: a bad row, a row outside the
    caller's scope or an unknown community refuses it whole. Then the rows land
    :data:`shared.db.CHUNK` at a time, each chunk in one transaction with its
    ``directory.*`` events, so other writers are not held up for the whole file: loading
    commits as it goes. If it dies part-way, the rows committed stay, and loading the same
    file again finds them unchanged and adds the rest.
    """
    rows = parse(data)
    if principal is not None:
        _check_scope(rows, uow, principal)
    _check_communities(rows, uow)
    uow.commit()  # nothing written yet; on SQLite the checks' reads hold the write lock
    counts = {"added": 0, "changed": 0, "unchanged": 0}

    def write(chunk: list[dict[str, Any]]) -> None:
        for row in chunk:
            counts[_upsert(row, uow)] += 1

    order = ("district", "street", "community", "unit")  # units refer to communities
    commit_in_chunks(uow, sorted((r for _, r in rows), key=lambda r: order.index(r["kind"])), write)
    return counts


def _check_communities(rows: list[tuple[int, dict[str, Any]]], uow: UnitOfWork) -> None:
    """Every community a unit names is known already or comes in the file."""
    known = {c.code for c in uow.session.scalars(select(Community))}
    known |= {r["code"] for _, r in rows if r["kind"] == "community"}
    errors = [
        {"row": str(n), "field": f, "message": f"unknown community {r[f]!r}"}
        for n, r in rows
        if r["kind"] == "unit"
        for f in ("community_code", "contact_community_code")
        if r.get(f) and r[f] not in known
    ]
    if errors:
        raise Invalid("the directory file refers to unknown communities", first_errors(errors))


def _upsert(row: dict[str, Any], uow: UnitOfWork) -> str:
    kind, code = row["kind"], row["code"]
    model: type[Division] | type[Community] | type[Unit]
    if kind in ("district", "street"):
        model = Division
        values: dict[str, Any] = {
            "name": row["name"],
            "kind": kind,
            "parent_code": row["parent_code"] or None,
        }
    elif kind == "community":
        model = Community
        values = {
            "name": row["name"],
            "district_code": code[:6],
            "valid_from": row["valid_from"],
            "valid_to": row["valid_to"],
            "phone": row.get("phone") or None,
        }
    else:
        model = Unit
        level = row.get("level") or "county"
        values = {
            "name": row["name"],
            "level": level,
            "district_code": CITY if level == "city" else (row["parent_code"] or "")[:6],
            "community_code": row["community_code"],
            "contact_community_code": row.get("contact_community_code") or None,
            "valid_from": row["valid_from"],
            "valid_to": row["valid_to"],
        }
    current = uow.session.get(model, code)
    if current is None:
        current = model(code=code, **values)
        uow.session.add(current)
        outcome = "added"
    else:
        changed = {k: v for k, v in values.items() if getattr(current, k) != v}
        if not changed:
            return "unchanged"
        for field, new in changed.items():
            uow.session.add(
                DirectoryChange(
                    kind=kind,
                    code=code,
                    field=field,
                    old=_text(getattr(current, field)),
                    new=_text(new),
                    changed_at=uow.now(),
                )
            )
            setattr(current, field, new)
        outcome = "changed"
    uow.session.flush()
    if isinstance(current, Community):
        uow.emit(
            CommunityChanged(
                code=current.code,
                name=current.name,
                district=current.district_code,
                valid_from=current.valid_from,
                valid_to=current.valid_to,
            ),
            district=current.district_code,
        )
    elif isinstance(current, Unit):
        uow.emit(
            UnitChanged(
                code=current.code,
                name=current.name,
                level=current.level,
                district=current.district_code,
                community_code=current.community_code,
                contact_community_code=current.contact_community_code,
            ),
            district=current.district_code,
        )
    return outcome


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
