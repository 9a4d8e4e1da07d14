"""Pairing's use cases."""

from __future__ import annotations

from sqlalchemy import delete, func, select, update

from services.pairing import wishes
from services.pairing.models import (
    CommunityReplica,
    MemberReplica,
    ServiceRecord,
    Team,
    TeamMembership,
    Wish,
    WishClaim,
)
from shared.auth import revoke_member_tokens
from shared.db import UnitOfWork, messaging_stats
from shared.events import (
    CommunityChanged,
    Envelope,
    MemberRegistered,
    MemberWithdrawn,
    RegistrationChanged,
)


def record_member(event: MemberRegistered, envelope: Envelope, uow: UnitOfWork) -> None:
    """Keep the replica of a registered (or updated) member, whatever the redeliveries."""
    replica = uow.session.get(MemberReplica, event.member_id)
    if replica is None:
        replica = MemberReplica(id=event.member_id, registered_at=envelope.occurred_at)
        uow.session.add(replica)
    replica.unit_code = event.unit_code
    states = {c["registration_id"]: c.get("state", "submitted") for c in replica.communities or []}
    replica.communities = [
        {
            "code": c.community_code,
            "role": c.role,
            "registration_id": str(c.registration_id),
            "state": states.get(str(c.registration_id), "submitted"),
        }
        for c in event.communities
    ]
    replica.skills = list(event.skills)
    replica.availability = list(event.availability)
    replica.is_leader_cadre = event.is_leader_cadre


def record_registration(event: RegistrationChanged, envelope: Envelope, uow: UnitOfWork) -> None:
    """Follow a registration's state: only confirmed members are paired."""
    replica = uow.session.get(MemberReplica, event.member_id)
    if replica is None:
        return  # the member.registered event carries the registrations when it comes
    communities = [dict(c) for c in replica.communities]
    for c in communities:
        if c["registration_id"] == str(event.registration_id):
            c["state"] = event.state
    replica.communities = communities


def record_community(event: CommunityChanged, envelope: Envelope, uow: UnitOfWork) -> None:
    community = uow.session.get(CommunityReplica, event.code)
    if community is None:
        community = CommunityReplica(code=event.code)
        uow.session.add(community)
    community.name = event.name
    community.district_code = event.district
    community.valid_to = event.valid_to


def forget_member(event: MemberWithdrawn, envelope: Envelope, uow: UnitOfWork) -> None:
    """A withdrawn member leaves no trace here: a wish they still held goes back to the
    community (published again, the event naming nobody); their claims, service records
    and team places are erased."""
    member_id = event.member_id
    revoke_member_tokens(uow, member_id)
    held = uow.session.scalars(
        select(WishClaim).where(WishClaim.member_id == member_id, WishClaim.state == "active")
    ).all()
    for claim in held:
        wish = uow.session.get(Wish, claim.wish_id)
        if wish is not None and wish.state == "claimed":
            wishes.move(wish, "published", uow, event="released", reason="the member withdrew")
    uow.session.flush()
    for model in (WishClaim, ServiceRecord, TeamMembership):
        uow.session.execute(delete(model).where(model.member_id == member_id))
    uow.session.execute(
        update(Team).where(Team.leader_member_id == member_id).values(leader_member_id=None)
    )
    uow.session.execute(delete(MemberReplica).where(MemberReplica.id == member_id))


def stats(uow: UnitOfWork) -> dict[str, int]:
    return {
        "members": uow.session.scalar(select(func.count()).select_from(MemberReplica)) or 0,
        **messaging_stats(uow),
    }
