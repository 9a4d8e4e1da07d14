"""Projections: each event applied to reporting's read models, with the time it occurred.

Every handler is idempotent on state, not only on event id: registration routes
``member.registered`` once per district a member touches (same payload, different ids), so
the same picture may arrive twice and changes nothing the second time. Facts that change
are kept as intervals (:class:`~services.reporting.models.Span`) through :func:`change`, so
the figures can be read as of any instant.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update

from services.reporting.models import (
    EventLogEntry,
    MemberFact,
    MemberScope,
    MemberStatus,
    PairingState,
    Place,
    RecordFact,
    RegistrationState,
    Span,
    WishState,
)
from shared.auth import revoke_member_tokens
from shared.config import CITY
from shared.db import UnitOfWork
from shared.events import (
    ActivityChanged,
    CommunityChanged,
    Envelope,
    Event,
    MemberRegistered,
    MemberWithdrawn,
    PairingChanged,
    RegistrationChanged,
    UnitChanged,
    WishChanged,
)

#: A member counts in a community while a registration there is in one of these states.
COUNTING = ("submitted", "confirmed")
KINDS = ("home_visit", "community_activity", "policy_talk", "wish", "team")
#: Wish states that keep the member who claimed the wish when the event names nobody.
HELD = ("claimed", "fulfilled", "confirmed", "evaluated")


def change(
    uow: UnitOfWork,
    model: type[Span],
    key: dict[str, Any],
    values: dict[str, Any],
    at: datetime,
) -> Span | None:
    """Make ``values`` hold for ``key`` from ``at``: the interval covering ``at`` is cut
    there, a new one starts. Nothing happens when the values already hold (a redelivered
    or repeated state); a change arriving late is slotted in before the later ones. Two
    changes at the same instant leave an empty interval and the last applied holds.
    """
    where = [getattr(model, k) == v for k, v in key.items()]
    rows = uow.session.scalars(select(model).where(*where).order_by(model.valid_from, model.id))
    history = list(rows)
    covering = [
        r for r in history if r.valid_from <= at and (r.valid_to is None or r.valid_to > at)
    ]
    if covering:
        current = covering[-1]
        if all(getattr(current, k) == v for k, v in values.items()):
            return current
        until = current.valid_to
        current.valid_to = at
    else:
        later = [r.valid_from for r in history if r.valid_from > at]
        until = min(later) if later else None
    make: Any = model  # a mapped subclass of Span; the mixin itself has no constructor
    row: Span = make(**key, **values, valid_from=at, valid_to=until)
    uow.session.add(row)
    uow.session.flush()
    return row


def current(uow: UnitOfWork, model: type[Span], **key: Any) -> Any:
    where = [getattr(model, k) == v for k, v in key.items()]
    return uow.session.scalar(select(model).where(*where, model.valid_to.is_(None)).limit(1))


# --- the event log -------------------------------------------------------------------------


def log_event(event: Event, envelope: Envelope, uow: UnitOfWork) -> None:
    """Append the envelope to the event log, in the same transaction as its effects.

    Sealed contacts are left out (minimum necessary): no projection reads them."""
    member_id = getattr(event, "member_id", None)
    body = envelope.model_dump(mode="json")
    for sealed in ("contact", "recipient"):
        if body["payload"].get(sealed) is not None:
            body["payload"][sealed] = None
    uow.session.add(
        EventLogEntry(
            event_id=str(envelope.id),
            type=envelope.type,
            occurred_at=envelope.occurred_at,
            member_id=member_id if isinstance(member_id, uuid.UUID) else None,
            body=json.dumps(body, ensure_ascii=False),
        )
    )
    uow.session.flush()


# --- members and where they count ----------------------------------------------------------


def rescope(uow: UnitOfWork, member_id: uuid.UUID, at: datetime) -> None:
    """Bring the member's scopes to what the member and their registrations say now: the
    city and the unit; each community with a submitted or confirmed registration; the
    districts of those communities and of a county-level unit. Each once."""
    member = uow.session.get(MemberFact, member_id)
    wanted: dict[str, bool] = {}
    if member is not None and member.withdrawn_at is None:
        cadre = member.is_leader_cadre
        communities = uow.session.scalars(
            select(RegistrationState.community_code).where(
                RegistrationState.member_id == member_id,
                RegistrationState.valid_to.is_(None),
                RegistrationState.state.in_(COUNTING),
            )
        ).all()
        districts = {member.unit_district} | {c[:6] for c in communities}
        scopes = {"city", f"unit:{member.unit_code}"}
        scopes |= {f"district:{d}" for d in districts if d != CITY}
        scopes |= {f"community:{c}" for c in communities}
        wanted = dict.fromkeys(scopes, cadre)
    held = uow.session.scalars(
        select(MemberScope).where(
            MemberScope.member_id == member_id, MemberScope.valid_to.is_(None)
        )
    ).all()
    for row in held:
        if wanted.get(row.scope) is row.is_leader_cadre:
            del wanted[row.scope]
        else:
            row.valid_to = max(at, row.valid_from)
    uow.session.add_all(
        MemberScope(member_id=member_id, scope=s, is_leader_cadre=c, valid_from=at)
        for s, c in sorted(wanted.items())
    )
    uow.session.flush()


def refresh_status(uow: UnitOfWork, member_id: uuid.UUID) -> None:
    """Recompute the member's current standing from the current facts (a few rows)."""
    confirmed = set(
        uow.session.scalars(
            select(RegistrationState.role).where(
                RegistrationState.member_id == member_id,
                RegistrationState.valid_to.is_(None),
                RegistrationState.state == "confirmed",
            )
        )
    )
    paired = set(
        uow.session.scalars(
            select(PairingState.kind).where(
                PairingState.member_id == member_id,
                PairingState.valid_to.is_(None),
                PairingState.state == "active",
            )
        )
    )
    done = uow.session.execute(
        select(RecordFact.kind, func.count(), func.sum(RecordFact.hours))
        .where(RecordFact.member_id == member_id, RecordFact.state == "verified")
        .group_by(RecordFact.kind)
    ).all()
    kinds = {kind for kind, _, _ in done}
    status = uow.session.get(MemberStatus, member_id)
    if status is None:
        status = MemberStatus(member_id=member_id)
        uow.session.add(status)
    status.reported_in = bool(confirmed)
    status.dual_registered = {"unit", "residence"} <= confirmed
    status.dual_paired = {"need", "project"} <= paired
    for kind in KINDS:
        setattr(status, kind, kind in kinds)
    status.complete = set(KINDS) <= kinds
    status.verified_records = sum(n for _, n, _ in done)
    status.hours = round(sum(float(h or 0) for _, _, h in done), 2)


def record_member(event: MemberRegistered, envelope: Envelope, uow: UnitOfWork) -> None:
    """A member registered or changed: their facts, their registrations as first seen."""
    at = envelope.occurred_at
    member = uow.session.get(MemberFact, event.member_id)
    if member is None:
        member = MemberFact(member_id=event.member_id, registered_at=at)
        uow.session.add(member)
    member.unit_code = event.unit_code
    member.unit_district = event.unit_district
    member.is_leader_cadre = event.is_leader_cadre
    masked = getattr(event, "name_masked", None)
    if masked is not None:
        member.name_masked = masked
    uow.session.flush()
    for ref in event.communities:
        known = uow.session.scalar(
            select(RegistrationState.id)
            .where(RegistrationState.registration_id == ref.registration_id)
            .limit(1)
        )
        if known is None:  # the registrations a member arrives with are submitted
            change(
                uow,
                RegistrationState,
                {"registration_id": ref.registration_id},
                {
                    "member_id": event.member_id,
                    "community_code": ref.community_code,
                    "role": ref.role,
                    "state": "submitted",
                },
                at,
            )
    rescope(uow, event.member_id, at)
    refresh_status(uow, event.member_id)


def record_registration(event: RegistrationChanged, envelope: Envelope, uow: UnitOfWork) -> None:
    change(
        uow,
        RegistrationState,
        {"registration_id": event.registration_id},
        {
            "member_id": event.member_id,
            "community_code": event.community_code,
            "role": event.role,
            "state": event.state,
        },
        envelope.occurred_at,
    )
    rescope(uow, event.member_id, envelope.occurred_at)
    refresh_status(uow, event.member_id)


def forget_member(event: MemberWithdrawn, envelope: Envelope, uow: UnitOfWork) -> None:
    """A withdrawn member stops counting from the moment they withdrew (earlier figures stay
    as they were); their masked name is erased here and from the logged events, and their
    pairings end (pairing erases them without events)."""
    at = envelope.occurred_at
    revoke_member_tokens(uow, event.member_id)
    member = uow.session.get(MemberFact, event.member_id)
    if member is not None:
        member.withdrawn_at = member.withdrawn_at or at
        member.name_masked = None
    for pairing in uow.session.scalars(
        select(PairingState).where(
            PairingState.member_id == event.member_id,
            PairingState.valid_to.is_(None),
            PairingState.state == "active",
        )
    ).all():
        values = {c: getattr(pairing, c) for c in ("member_id", "kind", "community_code")}
        change(
            uow,
            PairingState,
            {"pairing_id": pairing.pairing_id},
            {**values, "state": "removed"},
            at,
        )
    rescope(uow, event.member_id, at)
    refresh_status(uow, event.member_id)
    erase_names(uow, event.member_id)


def erase_names(uow: UnitOfWork, member_id: uuid.UUID) -> None:
    """Drop the masked name from the member's logged ``member.*`` events (PIPL erasure)."""
    rows = uow.session.scalars(
        select(EventLogEntry).where(
            EventLogEntry.member_id == member_id,
            EventLogEntry.type.in_(("member.registered", "member.updated")),
        )
    ).all()
    for row in rows:
        body = json.loads(row.body)
        if body["payload"].get("name_masked") is not None:
            body["payload"]["name_masked"] = None
            uow.session.execute(
                update(EventLogEntry)
                .where(EventLogEntry.position == row.position)
                .values(body=json.dumps(body, ensure_ascii=False))
            )


# --- directory ------------------------------------------------------------------------------


def record_community(event: CommunityChanged, envelope: Envelope, uow: UnitOfWork) -> None:
    _place(uow, "community", event.code, event.name, event.district, None)


def record_unit(event: UnitChanged, envelope: Envelope, uow: UnitOfWork) -> None:
    _place(uow, "unit", event.code, event.name, event.district, event.level)


def _place(
    uow: UnitOfWork, kind: str, code: str, name: str, district: str, level: str | None
) -> None:
    scope = f"{kind}:{code}"
    place = uow.session.get(Place, scope)
    if place is None:
        place = Place(scope=scope, kind=kind, code=code)
        uow.session.add(place)
    place.name, place.district, place.level = name, district, level


# --- pairing: pairings, wishes, the five ones ----------------------------------------------


def record_pairing(event: PairingChanged, envelope: Envelope, uow: UnitOfWork) -> None:
    change(
        uow,
        PairingState,
        {"pairing_id": event.pairing_id},
        {
            "member_id": event.member_id,
            "kind": event.kind,
            "community_code": event.community_code,
            "state": event.state,
        },
        envelope.occurred_at,
    )
    refresh_status(uow, event.member_id)


def record_wish(event: WishChanged, envelope: Envelope, uow: UnitOfWork) -> None:
    """The wish's new state and who holds it: a fulfilled, confirmed or evaluated wish
    keeps its member; a released one (published again) has none."""
    member_id = event.member_id if event.state in HELD else None  # released: nobody holds it
    if member_id is None and event.state in HELD:
        before = current(uow, WishState, wish_id=event.wish_id)
        member_id = before.member_id if before is not None else None
    change(
        uow,
        WishState,
        {"wish_id": event.wish_id},
        {"community_code": event.community_code, "state": event.state, "member_id": member_id},
        envelope.occurred_at,
    )


def record_activity(event: ActivityChanged, envelope: Envelope, uow: UnitOfWork) -> None:
    """A service record's state; it counts from the moment it was verified (final)."""
    row = uow.session.get(RecordFact, event.record_id)
    if row is None:
        row = RecordFact(record_id=event.record_id)
        uow.session.add(row)
    elif row.state == "verified":
        return  # verified is final: a late 'submitted' changes nothing
    row.member_id = event.member_id
    row.kind = event.kind
    row.community_code = event.community_code
    row.day = event.day
    row.hours = event.hours
    row.state = event.state
    row.verified_at = envelope.occurred_at if event.state == "verified" else None
    if event.state == "verified":
        uow.session.flush()
        refresh_status(uow, event.member_id)
