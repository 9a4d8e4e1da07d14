"""Pairing's use cases."""

from __future__ import annotations

from sqlalchemy import func, select

from services.pairing.models import MemberReplica
from shared.db import UnitOfWork, messaging_stats
from shared.events import Envelope, MemberRegistered


def record_member(event: MemberRegistered, envelope: Envelope, uow: UnitOfWork) -> None:
    """Keep the replica of a registered member (once, even if routed to two districts)."""
    replica = uow.session.get(MemberReplica, event.member_id)
    if replica is None:
        replica = MemberReplica(id=event.member_id, registered_at=envelope.occurred_at)
        uow.session.add(replica)
    replica.unit_code = event.unit_code
    replica.communities = [
        {"code": c.community_code, "role": c.role, "registration_id": str(c.registration_id)}
        for c in event.communities
    ]
    replica.skills = list(event.skills)
    replica.is_leader_cadre = event.is_leader_cadre


def stats(uow: UnitOfWork) -> dict[str, int]:
    return {
        "members": uow.session.scalar(select(func.count()).select_from(MemberReplica)) or 0,
        **messaging_stats(uow),
    }
