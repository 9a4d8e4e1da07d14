"""Reporting's projections and figures."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import delete, func, insert, select

from services.reporting.models import MemberScope, RegistrationFact
from shared.auth import revoke_member_tokens
from shared.db import UnitOfWork, messaging_stats
from shared.events import Envelope, MemberRegistered, MemberWithdrawn, RegistrationChanged
from shared.http import Invalid

SCOPE = re.compile(r"^(city|district:\d{6}|unit:[\w-]{1,40}|community:\d{12})$")


def count_member(event: MemberRegistered, envelope: Envelope, uow: UnitOfWork) -> None:
    """Count a registered member in every scope they belong to, once each."""
    districts = {event.unit_district} | {c.district for c in event.communities}
    scopes = {"city", f"unit:{event.unit_code}"}
    scopes |= {f"district:{d}" for d in districts if d != "410300"}
    scopes |= {f"community:{c.community_code}" for c in event.communities}
    uow.session.execute(delete(MemberScope).where(MemberScope.member_id == event.member_id))
    uow.session.execute(
        insert(MemberScope),
        [
            {"member_id": event.member_id, "scope": s, "is_leader_cadre": event.is_leader_cadre}
            for s in sorted(scopes)
        ],
    )
    known = set(
        uow.session.scalars(
            select(RegistrationFact.registration_id).where(
                RegistrationFact.member_id == event.member_id
            )
        )
    )
    new = [c for c in event.communities if c.registration_id not in known]
    if new:  # the registrations a member arrives with are submitted
        uow.session.execute(
            insert(RegistrationFact),
            [
                {
                    "registration_id": c.registration_id,
                    "member_id": event.member_id,
                    "community_code": c.community_code,
                    "role": c.role,
                    "state": "submitted",
                }
                for c in new
            ],
        )


def record_registration(event: RegistrationChanged, envelope: Envelope, uow: UnitOfWork) -> None:
    fact = uow.session.get(RegistrationFact, event.registration_id)
    if fact is None:
        fact = RegistrationFact(registration_id=event.registration_id)
        uow.session.add(fact)
    fact.member_id = event.member_id
    fact.community_code = event.community_code
    fact.role = event.role
    fact.state = event.state


def forget_member(event: MemberWithdrawn, envelope: Envelope, uow: UnitOfWork) -> None:
    """A withdrawn member no longer counts anywhere."""
    revoke_member_tokens(uow, event.member_id)
    uow.session.execute(delete(MemberScope).where(MemberScope.member_id == event.member_id))
    uow.session.execute(
        delete(RegistrationFact).where(RegistrationFact.member_id == event.member_id)
    )


def _confirmed(role: str | None = None) -> Any:
    query = select(RegistrationFact.member_id).where(
        RegistrationFact.member_id == MemberScope.member_id,
        RegistrationFact.state == "confirmed",
    )
    if role:
        query = query.where(RegistrationFact.role == role)
    return query.exists()


def summary(scope: str, uow: UnitOfWork) -> dict[str, object]:
    """Live figures for ``scope`` (``city``, ``district:410303``, ``unit:…``, ``community:…``)."""
    if not SCOPE.match(scope):
        raise Invalid(
            "unknown scope",
            [{"field": "scope", "message": "use city, district:CODE, unit:CODE or community:CODE"}],
        )
    rows = select(func.count()).select_from(MemberScope).where(MemberScope.scope == scope)
    count = uow.session.scalar
    return {
        "scope": scope,
        "members": count(rows) or 0,
        "reported_in": count(rows.where(_confirmed())) or 0,
        "dual_registered": count(rows.where(_confirmed("unit"), _confirmed("residence"))) or 0,
        "leading_cadres": count(rows.where(MemberScope.is_leader_cadre)) or 0,
    }


def stats(uow: UnitOfWork) -> dict[str, int]:
    counted = select(func.count()).select_from(MemberScope).where(MemberScope.scope == "city")
    return {"members": uow.session.scalar(counted) or 0, **messaging_stats(uow)}
