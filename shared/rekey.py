"""Re-sealing a service's personal data under the current key (key rotation).

A :class:`SealedColumn` says where sealed values rest in one service's database: a column
holding one sealed value (text, or its bytes), a JSON column whose ``key`` holds one, or
event envelopes (the outbox, reporting's event log) with sealed contacts and codes inside.
:func:`reseal` walks a column in primary-key order, a short transaction per batch, and
writes each value sealed again as a compare-and-set on the value it read: a row a running
service changed meanwhile is left as that service wrote it (already under the current key)
or picked up by the next pass. :func:`versions` counts the values under each key version.
Neither ever shows a value: only counts leave here.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from cryptography.exceptions import InvalidTag
from sqlalchemy import Table, Text, cast, func, select, update
from sqlalchemy.sql.elements import ColumnElement

from shared.db import Database
from shared.events.auth import SignInCodeRequested
from shared.events.members import SealedContact
from shared.pii import Sealer, UnknownKeyVersion, key_version

Kind = Literal["text", "bytes", "json", "envelope"]


@dataclass(frozen=True)
class SealedColumn:
    """Where sealed values rest: ``table.column`` of one service's database.

    ``kind``: ``text`` (one sealed value under ``context``), ``bytes`` (the same, stored as
    bytes), ``json`` (a JSON object whose ``key`` holds one) or ``envelope`` (event
    envelopes as JSON text: every sealed contact and sign-in code in their payloads).
    ``batch`` caps the rows of one transaction below the caller's (large files).
    """

    table: str
    column: str
    kind: Kind = "text"
    context: str = ""
    key: str = ""
    batch: int | None = None


@dataclass
class Outcome:
    """What one pass over a column did, counted (never the values)."""

    resealed: int = 0
    changed_meanwhile: int = 0
    unopened: int = 0


@dataclass
class _Sealed:
    """One sealed value inside a stored value, and how to put a new one in its place."""

    token: str
    context: str
    put: Callable[[str], None] = field(repr=False)


def _in_envelope(body: dict[str, Any]) -> Iterator[_Sealed]:
    """The sealed values of an envelope: every sealed contact (``{"sealed", "phone_masked"}``
    anywhere in the payload) and a sign-in code."""
    payload = body.get("payload")
    if not isinstance(payload, dict):
        return
    if body.get("type") == SignInCodeRequested.TYPE and isinstance(payload.get("code"), str):
        yield _Sealed(payload["code"], SignInCodeRequested.CODE_CONTEXT, _setter(payload, "code"))
    stack: list[Any] = [payload]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            sealed = node.get("sealed")
            if isinstance(sealed, str) and set(node) <= {"sealed", "phone_masked"}:
                yield _Sealed(sealed, SealedContact.CONTEXT, _setter(node, "sealed"))
            else:
                stack.extend(node.values())


def _setter(container: dict[str, Any], key: str) -> Callable[[str], None]:
    def put(value: str) -> None:
        container[key] = value

    return put


class _Stored:
    """A stored value of a column, parsed so its sealed values can be read and replaced."""

    def __init__(self, spec: SealedColumn, raw: Any) -> None:
        self.spec = spec
        self.raw = raw
        self.parsed: Any = None
        self.sealed: list[_Sealed] = []
        if spec.kind == "text":
            self.sealed = [_Sealed(raw, spec.context, self._put_text)]
        elif spec.kind == "bytes":
            self.sealed = [_Sealed(bytes(raw).decode(), spec.context, self._put_text)]
        else:
            self.parsed = json.loads(raw)
            if spec.kind == "envelope" and isinstance(self.parsed, dict):
                self.sealed = list(_in_envelope(self.parsed))
            elif isinstance(self.parsed, dict) and isinstance(self.parsed.get(spec.key), str):
                token = self.parsed[spec.key]
                self.sealed = [_Sealed(token, spec.context, _setter(self.parsed, spec.key))]

    def _put_text(self, value: str) -> None:
        self.parsed = value

    def resealed(self, sealer: Sealer) -> Any:
        """The value to store with every sealed value under the current key, or None when
        there is nothing to change."""
        changed = False
        for found in self.sealed:
            new = sealer.reseal(found.token, found.context)
            if new is not None:
                found.put(new)
                changed = True
        if not changed:
            return None
        if self.spec.kind == "text":
            return self.parsed
        if self.spec.kind == "bytes":
            return str(self.parsed).encode()
        if self.spec.kind == "json":
            return self.parsed  # the column's JSON type writes it
        return json.dumps(self.parsed, ensure_ascii=False, separators=(",", ":"))


def _column(table: Table, spec: SealedColumn) -> ColumnElement[Any]:
    """What is read and compared: JSON columns as their text, so a compare-and-set works
    on PostgreSQL's ``json`` type too (it has no equality)."""
    column = table.c[spec.column]
    return cast(column, Text) if spec.kind == "json" else column


#: Enough of a text value to read its key version (``v123456.``).
_HEAD = 12


def _batches(
    db: Database,
    spec: SealedColumn,
    size: int,
    *,
    write: bool,
    head: bool = False,
    not_under: int | None = None,
) -> Iterator[tuple[Any, list[tuple[Any, Any]]]]:
    """``(connection, [(primary key, stored), …])`` in primary-key order, each batch in a
    transaction of its own (committed when the caller moves on). ``head``: a text or bytes
    column's first characters only (its version); ``not_under``: leave out the text values
    already sealed under that version."""
    table = db.metadata.tables[spec.table]
    (pk,) = table.primary_key.columns
    column = table.c[spec.column]
    plain = spec.kind in ("text", "bytes")
    stored = func.substr(column, 1, _HEAD) if head and plain else _column(table, spec)
    last = None
    engine = db.engine if write else db.engine.execution_options(servicemonth_reader=True)
    while True:
        query = select(pk, stored).where(column.is_not(None))
        if not_under is not None and not_under > 1 and spec.kind == "text":
            query = query.where(column.not_like(f"v{not_under}.%"))
        if last is not None:
            query = query.where(pk > last)
        with engine.begin() as conn:
            rows = [(r[0], r[1]) for r in conn.execute(query.order_by(pk).limit(size))]
            if not rows:
                return
            yield conn, rows
        last = rows[-1][0]


def reseal(
    db: Database,
    spec: SealedColumn,
    sealer: Sealer,
    *,
    batch: int = 500,
    progress: Callable[[Outcome], None] | None = None,
) -> Outcome:
    """One pass over ``spec``: every value under an older key sealed again under the
    current one, ``batch`` rows a transaction; ``progress`` hears after each batch."""
    table = db.metadata.tables[spec.table]
    (pk,) = table.primary_key.columns
    outcome = Outcome()
    size = min(batch, spec.batch or batch)
    for conn, rows in _batches(db, spec, size, write=True, not_under=sealer.version):
        for key, raw in rows:
            try:
                new = _Stored(spec, raw).resealed(sealer)
            except (InvalidTag, UnknownKeyVersion, ValueError):
                outcome.unopened += 1
                continue
            if new is None:
                continue
            written = conn.execute(
                update(table)
                .where(pk == key, _column(table, spec) == raw)
                .values({spec.column: new})
            )
            if written.rowcount == 1:
                outcome.resealed += 1
            else:
                outcome.changed_meanwhile += 1
        if progress is not None:
            progress(outcome)
    return outcome


def versions(db: Database, spec: SealedColumn, *, batch: int = 2000) -> Counter[int]:
    """How many sealed values of ``spec`` rest under each key version."""
    counts: Counter[int] = Counter()
    for _conn, rows in _batches(db, spec, batch, write=False, head=True):
        for _key, raw in rows:
            try:
                counts.update(key_version(s.token) for s in _Stored(spec, raw).sealed)
            except ValueError:
                continue  # not JSON: nothing this column is known to seal
    return counts


def unopened(db: Database, spec: SealedColumn, sealer: Sealer, *, batch: int = 2000) -> int:
    """How many sealed values of ``spec`` do not open with ``sealer`` (a key missing, or
    a value damaged): 0 before a key is retired."""
    count = 0
    for _conn, rows in _batches(db, spec, min(batch, spec.batch or batch), write=False):
        for _key, raw in rows:
            try:
                found = _Stored(spec, raw).sealed
            except ValueError:
                continue
            for sealed in found:
                try:
                    sealer.open(sealed.token, sealed.context)
                except (InvalidTag, ValueError):
                    count += 1
    return count
