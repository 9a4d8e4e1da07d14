"""The live read models: the events the consumer applies, folded over the rows they touch.

The consumer hands reporting each run of consecutive events it applies together (one
alone otherwise: :meth:`shared.messagebus.EventTable.in_runs`). For a run, in the consumer's
unit of work:

1. a withdrawn member's id is replaced by their pseudonym (:mod:`pseudonyms`);
2. the envelopes are appended to the event log, before any projection is written (a
   rebuild's swap locks the log to hold the consumer back);
3. the rows the events can read or change are loaded into a :class:`~replay.Fold` — the
   members they name with their scopes, standing, registrations, pairings and records, and
   the registrations, pairings, wishes and records they name — the events are folded in
   order with the rules a rebuild replays (:data:`replay.FOLDS`, one set of rules), and the
   rows they touched are written back: deleted by their key and inserted again (COPY on
   PostgreSQL), the new intervals with ids taken from the table's own sequence.

At most a few dozen statements a run instead of about ten per event. A withdrawal ends a run: once
its rows are written the member's tokens are revoked and their id is pseudonymised
everywhere (:func:`pseudonyms.forget`), so the events after it see the pseudonym.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Table, func, insert, select, text
from sqlalchemy.orm import Session

from services.reporting import event_log, pseudonyms, replay
from services.reporting.models import Base
from shared.auth import revoke_member_tokens
from shared.db import UnitOfWork, copy_rows
from shared.events import (
    ActivityChanged,
    Envelope,
    Event,
    MemberRegistered,
    MemberWithdrawn,
    PairingChanged,
    RegistrationChanged,
    WishChanged,
)
from shared.pii import Sealer

#: New intervals are numbered from here while folding, then given the table's next ids.
PROVISIONAL = 1 << 40
#: Keys per ``IN (…)`` list.
KEYS_PER_STATEMENT = 500


def apply_run(items: Sequence[tuple[Event, Envelope]], uow: UnitOfWork, sealer: Sealer) -> None:
    """Apply ``items`` (events of :data:`replay.FOLDS`, in order) to the log and the read
    models."""
    segment: list[tuple[Event, Envelope]] = []
    for item in items:
        segment.append(item)
        if isinstance(item[0], MemberWithdrawn):
            withdrawn = _apply(segment, uow, sealer)[-1][0]
            assert isinstance(withdrawn, MemberWithdrawn)
            revoke_member_tokens(uow, withdrawn.member_id)
            pseudonyms.forget(uow, withdrawn.member_id, sealer)
            segment = []
    if segment:
        _apply(segment, uow, sealer)


def _apply(
    items: Sequence[tuple[Event, Envelope]], uow: UnitOfWork, sealer: Sealer
) -> list[tuple[Event, Envelope]]:
    kept = pseudonyms.substitute(items, uow, sealer)
    event_log.log_events(kept, uow)
    session = uow.session
    fold = load(session, [event for event, _ in kept])
    fold.track()
    for event, envelope in kept:
        replay.FOLDS[type(event)](fold, event, envelope.occurred_at)
    write(session, fold)
    return kept


# --- loading ---------------------------------------------------------------------------------


def _chunks(keys: Iterable[Any]) -> Iterable[list[Any]]:
    listed = list(keys)
    for start in range(0, len(listed), KEYS_PER_STATEMENT):
        yield listed[start : start + KEYS_PER_STATEMENT]


def _table(name: str) -> Table:
    return Base.metadata.tables[name]


def _rows(session: Session, name: str, where: Any) -> list[Any]:
    table = _table(name)
    columns = [table.c[c] for c in replay.COLUMNS[name]]
    return list(session.execute(select(*columns).where(where)).all())


def load(session: Session, events: Sequence[Event]) -> replay.Fold:
    """A fold holding every row ``events`` can read or change."""
    members: set[uuid.UUID] = set()
    named: dict[str, set[uuid.UUID]] = {t: set() for t in (*replay.HISTORIES, "record_facts")}
    for event in events:
        member_id = getattr(event, "member_id", None)
        if isinstance(member_id, uuid.UUID) and not isinstance(event, WishChanged):
            members.add(member_id)
        if isinstance(event, MemberRegistered):  # member.updated too
            named["registration_states"] |= {ref.registration_id for ref in event.communities}
        elif isinstance(event, RegistrationChanged):
            named["registration_states"].add(event.registration_id)
        elif isinstance(event, PairingChanged):
            named["pairing_states"].add(event.pairing_id)
        elif isinstance(event, WishChanged):
            named["wish_states"].add(event.wish_id)
        elif isinstance(event, ActivityChanged):
            named["record_facts"].add(event.record_id)

    fold = replay.Fold()
    for name in ("member_scopes", *replay.HISTORIES):
        fold.start_ids(name, PROVISIONAL)
    for chunk in _chunks(members):
        _load_members(session, fold, chunk)
    for name, key in replay.HISTORIES.items():
        table = _table(name)
        keys = set(named[name])
        if name != "wish_states":  # a member's own registrations and pairings as well
            for chunk in _chunks(members):
                keys |= set(
                    session.scalars(
                        select(table.c[key]).where(table.c.member_id.in_(chunk)).distinct()
                    )
                )
        for chunk in _chunks(keys):
            for row in _rows(session, name, table.c[key].in_(chunk)):
                fold.add_span(name, row)
    records = _table("record_facts")
    keys = set(named["record_facts"])
    for chunk in _chunks(keys):
        for row in _rows(session, "record_facts", records.c.record_id.in_(chunk)):
            fold.add_record(row)
    for chunk in _chunks(members):
        for row in _rows(session, "record_facts", records.c.member_id.in_(chunk)):
            fold.add_record(row)
    return fold


def _load_members(session: Session, fold: replay.Fold, chunk: list[uuid.UUID]) -> None:
    for row in _rows(session, "member_facts", _table("member_facts").c.member_id.in_(chunk)):
        fold.add_member(row)
    for row in _rows(session, "member_scopes", _table("member_scopes").c.member_id.in_(chunk)):
        fold.add_scope(row)
    for row in _rows(session, "member_status", _table("member_status").c.member_id.in_(chunk)):
        fold.status[row[0]] = tuple(row[1:])


# --- writing ---------------------------------------------------------------------------------


def write(session: Session, fold: replay.Fold) -> None:
    """Rewrite the rows the fold touched since it was loaded: each key's rows deleted and
    inserted again, new intervals numbered by the table's own sequence."""
    for name, keys in (fold.dirty or {}).items():
        if not keys:
            continue
        table = _table(name)
        rows = list(fold.rows(name, keys))
        if "id" in table.c:
            rows = _numbered(session, table, rows)
        key = table.c[replay.KEYS[name]]
        for chunk in _chunks(keys):
            session.execute(table.delete().where(key.in_(chunk)))
        columns = replay.COLUMNS[name]
        if rows and session.get_bind().dialect.name == "postgresql":
            copy_rows(session.connection(), name, columns, rows)
        elif rows:
            session.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in rows])
    fold.track()


def _numbered(session: Session, table: Table, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """``rows`` (id first) with the provisional ids of new intervals replaced, in order, by
    the next ids of ``table``."""
    new = sorted(row[0] for row in rows if row[0] >= PROVISIONAL)
    if not new:
        return rows
    ids = dict(zip(new, _next_ids(session, table, len(new)), strict=True))
    return [(ids.get(row[0], row[0]), *row[1:]) for row in rows]


def _next_ids(session: Session, table: Table, n: int) -> list[int]:
    """``n`` ids for new rows of ``table``. PostgreSQL: from the column's sequence, as an
    insert would take them; SQLite: after the largest (the unit of work holds the write
    lock: the inbox row was written first)."""
    if session.get_bind().dialect.name == "postgresql":
        return sorted(
            session.scalars(
                text(
                    "SELECT nextval(pg_get_serial_sequence(:table, 'id'))"
                    " FROM generate_series(1, :n)"
                ),
                {"table": table.name, "n": n},
            )
        )
    last = session.scalar(select(func.coalesce(func.max(table.c.id), 0))) or 0
    return list(range(last + 1, last + 1 + n))
