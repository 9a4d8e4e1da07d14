"""Pairing's HTTP API as types: what each route takes (``…In``) and answers (``…Out``).

Field names are the contract the web app and other clients read (docs/contract.md); an
instant is sent as the ISO string it always was (``2016-07-01T09:30:00+00:00``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field

from services.pairing.activities import MAX_HOURS
from shared.http import FromRow

_IN = ConfigDict(extra="forbid", str_strip_whitespace=True)
CommunityCode = Annotated[str, Field(pattern=r"^\d{12}$")]
Instant = Annotated[
    str,
    BeforeValidator(lambda v: v.isoformat() if isinstance(v, dt.datetime) else v),
    Field(description="an ISO 8601 instant"),
]

# --- requests --------------------------------------------------------------------------------


class ReasonIn(BaseModel):
    model_config = _IN

    reason: str = Field(min_length=1, max_length=500)


class OptionalReasonIn(BaseModel):
    model_config = _IN

    reason: str | None = Field(default=None, max_length=500)


class WishIn(BaseModel):
    model_config = _IN

    community_code: CommunityCode
    title: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    category: str | None = Field(default=None, max_length=40)
    beneficiary_category: str | None = Field(default=None, max_length=30)
    deadline: dt.date | None = None


class ClaimIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    member_id: uuid.UUID


class RatingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rating: int = Field(ge=1, le=5)


class RecordIn(BaseModel):
    """One of the five ones; give ``hours``, or ``start_time`` and ``end_time`` (or both)."""

    model_config = _IN

    member_id: uuid.UUID
    kind: Literal["home_visit", "community_activity", "policy_talk", "wish", "team"]
    community_code: CommunityCode
    date: dt.date
    hours: float | None = Field(default=None, gt=0, le=MAX_HOURS)
    start_time: dt.time | None = None
    end_time: dt.time | None = None
    note: str | None = Field(default=None, max_length=1000)


class JoinIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    member_id: uuid.UUID


class TargetIn(BaseModel):
    model_config = _IN

    category: str = Field(max_length=30)
    label: str = Field(max_length=60, description="the resident's name; stored masked (张*)")
    consent: bool = False


class NeedIn(BaseModel):
    model_config = _IN

    title: str = Field(max_length=200)
    required_skill: str | None = Field(default=None, max_length=40)
    category: str | None = Field(default=None, max_length=30)
    volunteers_needed: int = 1
    availability: list[str] = Field(default=[], max_length=3)
    window_start: dt.date | None = None
    window_end: dt.date | None = None
    target_id: uuid.UUID | None = None


class ProjectIn(BaseModel):
    model_config = _IN

    kind: str = Field(max_length=30)
    title: str = Field(max_length=200)
    required_skill: str | None = Field(default=None, max_length=40)
    schedule: str | None = Field(default=None, max_length=200)
    availability: list[str] = Field(default=[], max_length=3)
    capacity: int = 10


class TeamIn(BaseModel):
    model_config = _IN

    name: str = Field(max_length=100)
    speciality: str | None = Field(default=None, max_length=40)
    leader_member_id: uuid.UUID | None = Field(
        default=None, validation_alias=AliasChoices("leader_member_id", "leader")
    )


class RunIn(BaseModel):
    model_config = _IN

    scope: str = Field(max_length=40, description="community:CODE, district:CODE or city")


class PairIn(BaseModel):
    model_config = _IN

    member_id: uuid.UUID
    need_id: uuid.UUID | None = None
    project_id: uuid.UUID | None = None


# --- 微心愿 ------------------------------------------------------------------------------------


class ClaimOut(BaseModel):
    """A wish's latest claim; ``member_id`` is hidden from a member who is not its claimer."""

    id: uuid.UUID
    state: str
    member_id: uuid.UUID | None
    claimed_at: Instant
    expires_at: Instant
    closed_at: Instant | None


class WishOut(BaseModel):
    id: uuid.UUID
    state: str
    community_code: str
    title: str
    description: str | None
    category: str | None
    beneficiary_category: str | None
    deadline: dt.date | None
    reason: str | None
    rating: int | None
    claim: ClaimOut | None


class WishMatch(BaseModel):
    """Why a wish suits the member: their skill, their role in the community, days left."""

    skill: str | None
    community: str
    days_left: int | None


class RecommendedWishOut(WishOut):
    score: int
    match: WishMatch


# --- 五个一 ------------------------------------------------------------------------------------


class RecordOut(BaseModel):
    id: uuid.UUID
    state: str
    member_id: uuid.UUID
    kind: str
    community_code: str
    date: dt.date
    hours: float
    start_time: str | None = Field(description="HH:MM, campaign time")
    end_time: str | None = Field(description="HH:MM, campaign time")
    note: str | None
    source: str
    reason: str | None


class MembershipOut(BaseModel):
    id: uuid.UUID
    state: str
    team_id: uuid.UUID
    team_name: str
    community_code: str
    member_id: uuid.UUID


class ProgressOut(BaseModel):
    """五个一完成情况 — each item done (verified), all five done, hours, what is missing."""

    home_visit: bool
    community_activity: bool
    policy_talk: bool
    wish: bool
    team: bool
    complete: bool
    hours: float
    missing: list[str]


class MemberProgressOut(ProgressOut):
    member_id: uuid.UUID


class CadreProgressOut(ProgressOut):
    member_id: uuid.UUID
    unit_code: str


class CadresOut(BaseModel):
    scope: str
    leading_cadres: int
    active: int
    complete: int
    members: list[CadreProgressOut]


class UnitMemberProgressOut(ProgressOut):
    member_id: uuid.UUID
    is_leader_cadre: bool
    reported_in: bool


# --- 双对接: what a community publishes -------------------------------------------------------


class PublishedOut(FromRow):
    id: uuid.UUID
    community_code: str
    created_at: Instant


class TargetOut(PublishedOut):
    category: str
    label: str = Field(description="masked (张*)")
    sensitive: bool
    consent: bool


class NeedOut(PublishedOut):
    state: str
    title: str
    required_skill: str | None
    category: str | None
    volunteers_needed: int
    availability: list[str]
    window_start: dt.date | None
    window_end: dt.date | None
    target_id: uuid.UUID | None
    paired: int
    open_places: int


class ProjectOut(PublishedOut):
    state: str
    kind: str
    title: str
    required_skill: str | None
    schedule: str | None
    availability: list[str]
    capacity: int
    paired: int
    open_places: int


class TeamOut(PublishedOut):
    name: str
    speciality: str | None
    leader_member_id: uuid.UUID | None


class RowError(BaseModel):
    row: int = Field(description="the row number the spreadsheet shows")
    field: str
    message: str


class UploadOut(BaseModel):
    """What a spreadsheet upload published: good rows land, bad ones come back by row."""

    total: int
    accepted: int
    rejected: int
    ids: list[uuid.UUID]
    errors: list[RowError]


# --- 双对接: runs, pairings, the report --------------------------------------------------------


class RunOut(BaseModel):
    """A run's summary. When no place was open, the run stops early and the figures from
    ``leaders`` on are absent."""

    run_id: uuid.UUID
    scope: str
    created: int
    needs: int
    projects: int
    members: int
    leaders: int | None = None
    needs_paired: int | None = None
    projects_paired: int | None = None
    dual_paired: int | None = None
    leaders_dual_paired: int | None = None
    score: int | None = None


class PairingRunOut(BaseModel):
    """A run as a job: ``POST /pairings/run`` answers it ``queued`` at once (202, with a
    ``Location``), pairing's worker does it, and ``GET /pairings/runs/{id}`` follows it.

    ``state``: queued, running, done or failed. ``phase``: queued, loading (the open places
    and the members), solving (``progress.components_solved`` of ``progress.components``),
    writing, done or failed. ``progress`` holds the counts known so far (members, needs,
    projects, components, components_solved, created); ``result`` the summary once done."""

    id: uuid.UUID
    scope: str
    state: str
    phase: str
    progress: dict[str, int]
    created_at: dt.datetime
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    error: str | None = None
    result: RunOut | None = None


class PairingOut(BaseModel):
    id: uuid.UUID
    member_id: uuid.UUID
    kind: str
    subject_id: uuid.UUID
    need_id: uuid.UUID | None
    project_id: uuid.UUID | None
    title: str
    community_code: str
    score: int
    reason: dict[str, str]
    source: str
    state: str
    run_id: uuid.UUID | None
    created_at: Instant
    updated_at: Instant | None


class MemberPairingsOut(BaseModel):
    member_id: uuid.UUID
    dual_paired: bool
    pairings: list[PairingOut]


class UnpairedOut(BaseModel):
    member_id: uuid.UUID
    is_leader_cadre: bool
    missing: list[str]
    reason: str
    reasons: dict[str, str]


class OpenPlacesOut(BaseModel):
    id: uuid.UUID
    kind: str
    title: str
    open_places: int
    reason: str


class PairingReportOut(BaseModel):
    community_code: str
    members: int
    confirmed: int
    dual_paired: int
    leaders: int
    leaders_dual_paired: int
    unpaired_members: list[UnpairedOut]
    uncovered_needs: list[OpenPlacesOut]
    unfilled_projects: list[OpenPlacesOut]
