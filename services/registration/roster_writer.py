"""Landing a roster chunk's new members in bulk: COPY on PostgreSQL, executemany on SQLite.

What lands is what :func:`services.registration.enrolment.add_members` writes for the same
values — the members, their registrations (unit, residence, contact community) and one
``member.registered`` per district among them, the outbox rows byte for byte as
:meth:`shared.db.UnitOfWork.emit_many` makes them — only cheaper per row: the ID number's
HMAC computed by validation is reused, each event's body is serialised once from a plain
dict (``tests/integration/test_rosters.py`` checks it against the validated
``MemberRegistered`` of the API's path), and on PostgreSQL the three tables are filled
with ``COPY … FROM STDIN`` (psycopg 3) in the chunk's transaction instead of multi-row
INSERTs. A unique HMAC taken meanwhile by another import fails the COPY as it would the
INSERT: :class:`sqlalchemy.exc.IntegrityError`, so the caller sorts the chunk again.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from pydantic_core import to_json
from sqlalchemy import Table, insert

from services.registration.enrolment import Directory, MemberValues, member_communities
from services.registration.models import CommunityRegistration, Member
from shared.db import UnitOfWork, copy_rows, outbox_table
from shared.events import MemberRegistered, SealedContact
from shared.pii import Sealer, mask_id_number, mask_name, mask_phone

MEMBER_COLUMNS = (
    "id", "state", "name", "id_number_sealed", "id_number_hmac", "id_number_masked",
    "phone_sealed", "phone_hmac", "phone_masked", "email_sealed", "unit_code",
    "residence_community_code", "skills", "skills_other", "availability", "is_leader_cadre",
    "roster_id", "consented_at", "created_at",
)  # fmt: skip
#: Members' JSON columns (lists), by position in :data:`MEMBER_COLUMNS`.
JSON_COLUMNS = (12, 13, 14)
REGISTRATION_COLUMNS = (
    "id", "member_id", "community_code", "district_code", "role", "state", "created_at",
)  # fmt: skip
OUTBOX_COLUMNS = ("event_id", "routing_key", "body", "created_at")


@dataclass
class Landing:
    """The rows of one chunk, in the tables' column order (ids as text)."""

    members: list[tuple[Any, ...]] = field(default_factory=list)
    registrations: list[tuple[Any, ...]] = field(default_factory=list)
    outbox: list[tuple[Any, ...]] = field(default_factory=list)


def rows_for(
    fresh: Sequence[tuple[MemberValues, str]],
    uow: UnitOfWork,
    sealer: Sealer,
    directory: Directory,
    roster_id: uuid.UUID,
) -> Landing:
    """The rows for ``fresh`` members, each with its ID number's HMAC (already computed)."""
    now = uow.now()
    occurred_at = now.astimezone(UTC)
    correlation_id = None if uow.correlation_id is None else str(uow.correlation_id)
    event_type, version = MemberRegistered.TYPE, MemberRegistered.VERSION
    campaign, producer = uow.campaign, uow.producer
    landing = Landing()
    members, registrations, outbox = landing.members, landing.registrations, landing.outbox
    ids = new_ids(len(fresh) * 7)  # a member, three registrations, three events at most
    #: (unit, residence) → unit code and district, residence code, registrations
    #: (role, community, district) and their districts: read once per pair of the chunk.
    places: dict[tuple[int, int], tuple[str, str, str, list[tuple[str, str, str]], list[str]]]
    places = {}
    for v, id_digest in fresh:
        place = places.get((id(v.unit), id(v.residence)))
        if place is None:
            chosen = [
                (role, c.code, c.district_code)
                for role, c in member_communities(directory, v.unit, v.residence)
            ]
            place = (v.unit.code, v.unit.district_code, v.residence.code, chosen,
                     sorted({district for _, _, district in chosen}))  # fmt: skip
            places[(id(v.unit), id(v.residence))] = place
        unit_code, unit_district, residence_code, chosen, districts = place
        member_id = next(ids)
        members.append((
            member_id, "active", v.name, sealer.seal(v.id_number, "id_number"), id_digest,
            mask_id_number(v.id_number), sealer.seal(v.phone, "phone"), sealer.digest(v.phone),
            mask_phone(v.phone), sealer.seal(v.email, "email") if v.email else None,
            unit_code, residence_code, v.skills, v.skills_other, v.availability,
            v.is_leader_cadre, roster_id, now, now,
        ))  # fmt: skip
        refs = []
        for role, code, district in chosen:
            reg_id = next(ids)
            registrations.append((reg_id, member_id, code, district, role, "submitted", now))
            refs.append({"registration_id": reg_id, "community_code": code, "role": role,
                         "district": district})  # fmt: skip
        payload = {
            "member_id": member_id,
            "unit_code": unit_code,
            "unit_district": unit_district,
            "communities": refs,
            "skills": v.skills,
            "availability": v.availability,
            "is_leader_cadre": v.is_leader_cadre,
            "contact": {
                "sealed": SealedContact.seal(sealer, v.name, v.phone, v.email),
                "phone_masked": mask_phone(v.phone),
            },
            "name_masked": mask_name(v.name),
        }
        for district in districts:
            event_id = next(ids)
            body = {"id": event_id, "type": event_type, "version": version,
                    "occurred_at": occurred_at, "district": district, "campaign": campaign,
                    "producer": producer, "correlation_id": correlation_id,
                    "payload": payload}  # fmt: skip
            outbox.append((event_id, f"{district}.{event_type}", to_json(body).decode(), now))
    return landing


def new_ids(count: int) -> Iterator[str]:
    """``count`` random (version 4) UUIDs as text, from one read of the system's random
    source: what :func:`uuid.uuid4` makes, without a :class:`uuid.UUID` object each."""
    raw = os.urandom(16 * count)
    for start in range(0, 16 * count, 16):
        value = int.from_bytes(raw[start : start + 16]) & _CLEAR | _V4
        text = f"{value:032x}"
        yield f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


_CLEAR = ~(0xF000 << 64) & ~(0xC000 << 48)  # the version and variant bits
_V4 = (0x4000 << 64) | (0x8000 << 48)  # version 4, RFC 4122 variant


def write(uow: UnitOfWork, landing: Landing) -> None:
    """Put ``landing`` in the unit of work's transaction. Unlike
    :meth:`~shared.db.UnitOfWork.emit_many` it leaves ``uow.emitted`` alone: a roster's
    events are only its outbox rows (nothing reads them back before the relay)."""
    if not landing.members:
        return
    members = Member.__table__
    registrations = CommunityRegistration.__table__
    outbox = outbox_table(uow.db.metadata)
    assert isinstance(members, Table) and isinstance(registrations, Table)
    if uow.db.is_sqlite:
        for table, columns, rows in (
            (members, MEMBER_COLUMNS, landing.members),
            (registrations, REGISTRATION_COLUMNS, landing.registrations),
            (outbox, OUTBOX_COLUMNS, landing.outbox),
        ):
            uow.session.execute(insert(table), [_typed(dict(zip(columns, r, strict=True)))
                                                for r in rows])  # fmt: skip
    else:  # a unique HMAC taken meanwhile raises IntegrityError, as an INSERT would
        connection = uow.session.connection()
        copy_rows(connection, members.name, MEMBER_COLUMNS, _json_cells(landing.members))
        copy_rows(connection, registrations.name, REGISTRATION_COLUMNS, landing.registrations)
        copy_rows(connection, outbox.name, OUTBOX_COLUMNS, landing.outbox)


def _typed(row: dict[str, Any]) -> dict[str, Any]:
    """A row with its ids as :class:`uuid.UUID`, which SQLAlchemy's type needs on SQLite."""
    for key in ("id", "member_id"):
        if key in row:
            row[key] = uuid.UUID(row[key])
    return row


def _json_cells(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Members' rows with their JSON columns as text, as SQLAlchemy's JSON type writes it."""
    first, second, third = JSON_COLUMNS
    return [
        (*r[:first], json.dumps(r[first]), json.dumps(r[second]), json.dumps(r[third]),
         *r[third + 1 :])
        for r in rows
    ]  # fmt: skip
