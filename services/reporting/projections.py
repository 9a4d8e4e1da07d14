"""Projections of registration's events: members, where they count (scopes), their
registrations and standing, a withdrawal; the directory's places.

Every handler is idempotent on state, not only on event id: registration routes
``member.registered`` once per district a member touches (same payload, different ids), so
the same picture may arrive twice and changes nothing the second time. Registrations are
kept as intervals (:func:`services.reporting.spans.change`), so the figures can be read as
of any instant; pairing's events are projected in :mod:`services.reporting.pairing_facts`.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select

from services.reporting.figures.values import KINDS
from services.reporting.models import (
    MemberFact,
    MemberScope,
    MemberStatus,
    PairingState,
    Place,
    RecordFact,
    RegistrationState,
)
from services.reporting.spans import change
from shared.config import CITY
from shared.db import UnitOfWork
from shared.events import (
    CommunityChanged,
    Envelope,
    MemberRegistered,
    MemberWithdrawn,
    RegistrationChanged,
    UnitChanged,
)

#: A member counts in a community while a registration there is in one of these states.
COUNTING = ("submitted", "confirmed")


# --- members and where they count ----------------------------------------------------------


def current_registrations(uow: UnitOfWork, member_id: uuid.UUID) -> list[tuple[str, str, str]]:
    """The member's registrations that count now: (community_code, role, state)."""
    return list(
        uow.session.execute(
            select(
                RegistrationState.community_code, RegistrationState.role, RegistrationState.state
            ).where(
                RegistrationState.member_id == member_id,
                RegistrationState.valid_to.is_(None),
                RegistrationState.state.in_(COUNTING),
            )
        ).tuples()
    )


def settle(uow: UnitOfWork, member_id: uuid.UUID, at: datetime) -> None:
    """:func:`rescope` and :func:`refresh_status`, reading the registrations once."""
    registrations = current_registrations(uow, member_id)
    rescope(uow, member_id, at, registrations)
    refresh_status(uow, member_id, registrations)


def rescope(
    uow: UnitOfWork,
    member_id: uuid.UUID,
    at: datetime,
    registrations: list[tuple[str, str, str]],
) -> None:
    """Bring the member's scopes to what the member and their registrations say now: the
    city and the unit; each community with a submitted or confirmed registration; the
    districts of those communities and of a county-level unit. Each once, with whether the
    member reported in there (at a community: confirmed there; elsewhere: anywhere) and is
    a leading cadre; a scope whose flags change gets a new interval from ``at``.
    ``registrations``: :func:`current_registrations`."""
    member = uow.session.get(MemberFact, member_id)
    wanted: dict[str, tuple[bool, bool]] = {}
    if member is not None and member.withdrawn_at is None:
        cadre = member.is_leader_cadre
        communities = {code for code, _, _ in registrations}
        confirmed = {code for code, _, state in registrations if state == "confirmed"}
        districts = {member.unit_district} | {c[:6] for c in communities}
        scopes = {"city", f"unit:{member.unit_code}"}
        scopes |= {f"district:{d}" for d in districts if d != CITY}
        wanted = dict.fromkeys(scopes, (cadre, bool(confirmed)))
        wanted |= {f"community:{c}": (cadre, c in confirmed) for c in communities}
    held = uow.session.scalars(
        select(MemberScope).where(
            MemberScope.member_id == member_id, MemberScope.valid_to.is_(None)
        )
    ).all()
    for row in held:
        if wanted.get(row.scope) == (row.is_leader_cadre, row.reported_in):
            del wanted[row.scope]
        else:
            row.valid_to = max(at, row.valid_from)
    uow.session.add_all(
        MemberScope(member_id=member_id, scope=s, is_leader_cadre=c, reported_in=r, valid_from=at)
        for s, (c, r) in sorted(wanted.items())
    )
    uow.session.flush()


def refresh_status(
    uow: UnitOfWork,
    member_id: uuid.UUID,
    registrations: list[tuple[str, str, str]] | None = None,
) -> None:
    """Recompute the member's current standing from the current facts (a few rows);
    ``registrations`` (:func:`current_registrations`) are read when not given."""
    if registrations is None:
        registrations = current_registrations(uow, member_id)
    confirmed = {role for _, role, state in registrations if state == "confirmed"}
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
        member = MemberFact(member_id=event.member_id)
        uow.session.add(member)
    member.unit_code = event.unit_code
    member.unit_district = event.unit_district
    member.is_leader_cadre = event.is_leader_cadre
    masked = getattr(event, "name_masked", None)
    if masked is not None:
        member.name_masked = masked
    uow.session.flush()
    # the registrations a member arrives with are submitted; one seen before is left alone
    refs = [ref.registration_id for ref in event.communities]
    known = set(
        uow.session.scalars(
            select(RegistrationState.registration_id)
            .where(RegistrationState.registration_id.in_(refs))
            .distinct()
        )
        if refs
        else ()
    )
    for ref in event.communities:
        if ref.registration_id not in known:
            known.add(ref.registration_id)
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
    settle(uow, event.member_id, at)


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
    settle(uow, event.member_id, envelope.occurred_at)


def forget_member(event: MemberWithdrawn, envelope: Envelope, uow: UnitOfWork) -> None:
    """A withdrawn member stops counting from the moment they withdrew (earlier figures stay
    as they were); their masked name is erased here, and their pairings end (pairing
    erases them without events). The log and the tokens are not projections: see
    :func:`services.reporting.consumers.handlers_for`."""
    at = envelope.occurred_at
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
    settle(uow, event.member_id, at)


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
