"""The directory's events: a community or a unit was added, changed or closed."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field

from shared.events.envelope import CommunityCode, District, Event


class CommunityChanged(Event):
    """A community was added, renamed or closed in the directory."""

    TYPE = "directory.community_changed"

    code: CommunityCode
    name: str
    district: District
    valid_from: date | None = None
    valid_to: date | None = None


class UnitChanged(Event):
    """A unit was added or changed in the directory."""

    TYPE = "directory.unit_changed"

    code: str = Field(min_length=1, max_length=40)
    name: str
    level: Literal["city", "county"]
    district: District
    community_code: CommunityCode
    contact_community_code: CommunityCode | None = None
