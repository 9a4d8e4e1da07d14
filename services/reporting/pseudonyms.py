"""Erasure without rewriting history: a withdrawn member becomes a pseudonym in reporting.

Figures of closed periods must not change when a member withdraws (the member did take
part then), yet nothing in reporting may still point at them (PIPL erasure). So on
``member.withdrawn`` every reporting row and logged event that names the member is given a
fresh random id instead, and the member's keyed hash (HMAC with the deployment's key, as
for ID numbers) remembers which pseudonym a late event about them must use. Counts, and a
rebuild from the log, stay the same; the member id appears nowhere.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence

from sqlalchemy import select, update

from services.reporting.models import Base, EventLogEntry, Pseudonym
from shared.db import UnitOfWork
from shared.events import Envelope, Event
from shared.pii import Sealer

#: The logged events that carry a member's masked name.
NAMING = ("member.registered", "member.updated")


def substitute(
    items: Sequence[tuple[Event, Envelope]], uow: UnitOfWork, sealer: Sealer
) -> list[tuple[Event, Envelope]]:
    """The events as reporting may keep them: a forgotten member's id replaced by the
    pseudonym (one query for them all)."""
    named = {
        member_id
        for event, _ in items
        if isinstance(member_id := getattr(event, "member_id", None), uuid.UUID)
    }
    if not named:
        return list(items)
    digests = {sealer.digest(str(member_id)): member_id for member_id in named}
    found = uow.session.execute(
        select(Pseudonym.member_hmac, Pseudonym.pseudonym).where(
            Pseudonym.member_hmac.in_(list(digests))
        )
    ).tuples()
    replaced = {digests[digest]: pseudonym for digest, pseudonym in found}
    kept = []
    for event, envelope in items:
        pseudonym = replaced.get(getattr(event, "member_id", None))  # type: ignore[arg-type]
        if pseudonym is not None:
            payload = {**envelope.payload, "member_id": str(pseudonym)}
            event = event.model_copy(update={"member_id": pseudonym})
            envelope = envelope.model_copy(update={"payload": payload})
        kept.append((event, envelope))
    return kept


def forget(uow: UnitOfWork, member_id: uuid.UUID, sealer: Sealer) -> uuid.UUID | None:
    """Replace ``member_id`` everywhere in reporting's tables and log by a new pseudonym,
    and drop the masked name from the member's logged ``member.*`` events (PIPL erasure).

    Gives no new pseudonym for an id that is a pseudonym already (a repeated withdrawal,
    its id substituted; only names logged since are dropped) or a member forgotten before.
    """
    known = select(Pseudonym.member_hmac)
    if uow.session.scalar(known.where(Pseudonym.pseudonym == member_id)) is not None:
        _rewrite_log(uow, member_id, member_id)
        return None
    digest = sealer.digest(str(member_id))
    if uow.session.scalar(known.where(Pseudonym.member_hmac == digest)) is not None:
        return None
    pseudonym = uuid.uuid4()
    uow.session.add(Pseudonym(member_hmac=digest, pseudonym=pseudonym))
    for table in Base.metadata.sorted_tables:
        if "member_id" in table.c and table.name not in (Pseudonym.__tablename__, "event_log"):
            uow.session.execute(
                update(table).where(table.c.member_id == member_id).values(member_id=pseudonym)
            )
    _rewrite_log(uow, member_id, pseudonym)
    uow.session.flush()
    return pseudonym


def _rewrite_log(uow: UnitOfWork, member_id: uuid.UUID, pseudonym: uuid.UUID) -> None:
    """In one pass over the member's logged events: the id becomes ``pseudonym`` and the
    masked name of a ``member.*`` event is dropped."""
    for entry in uow.session.scalars(
        select(EventLogEntry).where(EventLogEntry.member_id == member_id)
    ):
        body = entry.body
        if entry.type in NAMING:
            data = json.loads(body)
            if data["payload"].get("name_masked") is not None:
                data["payload"]["name_masked"] = None
                body = json.dumps(data, ensure_ascii=False)
        entry.member_id = pseudonym
        entry.body = body.replace(str(member_id), str(pseudonym))
