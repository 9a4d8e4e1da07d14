"""Who may see what in pairing: a caller's scope against a community or a member.

Something outside the caller's scope answers 404, as if it did not exist (shared.auth).
"""

from __future__ import annotations

from services.pairing.models import CommunityReplica, MemberReplica
from shared.auth import Principal
from shared.config import CAMPAIGN_TZ
from shared.db import UnitOfWork
from shared.http import NotFound


def covers(principal: Principal, community_code: str) -> bool:
    """The community lies in the caller's scope (its district or itself)."""
    return principal.covers(districts={community_code[:6]}, communities={community_code})


def covers_member(principal: Principal, member: MemberReplica) -> bool:
    """The member is the caller, or belongs to the caller's unit, or is registered in one
    of the caller's communities or districts."""
    codes = {c["code"] for c in member.communities}
    return principal.covers(
        districts={c[:6] for c in codes},
        units={member.unit_code},
        communities=codes,
        member=str(member.id),
    )


def open_community(uow: UnitOfWork, code: str, who: Principal) -> CommunityReplica:
    """The community, or 404 when unknown, closed or outside the caller's scope."""
    community = uow.session.get(CommunityReplica, code)
    today = uow.now().astimezone(CAMPAIGN_TZ).date()
    if (
        community is None
        or (community.valid_to is not None and community.valid_to < today)
        or not covers(who, code)
    ):
        raise NotFound(f"no community {code}")
    return community
