"""Activity events: 五个一 service records and service-team memberships."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Literal

from shared.events.envelope import CommunityCode, Event


class ActivityChanged(Event):
    """五个一 — a service record was submitted, verified or returned."""

    record_id: uuid.UUID
    member_id: uuid.UUID
    kind: Literal["home_visit", "community_activity", "policy_talk", "wish", "team"]
    community_code: CommunityCode
    day: date
    hours: float
    state: Literal["submitted", "verified", "returned"]
    reason: str | None = None


class ActivitySubmitted(ActivityChanged):
    TYPE = "activity.submitted"


class ActivityVerified(ActivityChanged):
    TYPE = "activity.verified"


class ActivityReturned(ActivityChanged):
    TYPE = "activity.returned"


class TeamMembershipChanged(Event):
    """A member asked to join, was confirmed in, or left a service team."""

    team_id: uuid.UUID
    member_id: uuid.UUID
    community_code: CommunityCode
    team_name: str
    state: Literal["requested", "confirmed", "left"]


class TeamJoinRequested(TeamMembershipChanged):
    TYPE = "team.join_requested"


class TeamJoined(TeamMembershipChanged):
    TYPE = "team.joined"


class TeamLeft(TeamMembershipChanged):
    TYPE = "team.left"
