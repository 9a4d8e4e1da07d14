"""Reporting's HTTP types: what its routes take (``…In``) and what they answer (``…Out``).

Field names are the public contract (docs/contract.md): the web app reads them. Names and
contacts are masked (张*, ``138****0000``); ids are strings, times ISO 8601 strings; a rate
is a fraction rounded to 4 decimals, ``null`` where it does not apply.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from shared.auth import check_role_scope
from shared.config import DISTRICTS
from shared.pii import mobile

#: What a ranking may be by: the rates of :class:`~services.reporting.figures.Figures`.
RankKey = Literal[
    "five_ones_rate",
    "dual_pairing_rate",
    "reported_in_rate",
    "dual_registration_rate",
    "wish_completion_rate",
    "cadre_rate",
]
#: The level a ranking lists below its scope.
Level = Literal["district", "unit", "community"]

# --- live figures ----------------------------------------------------------------------------


class Rates(BaseModel):
    """A scope's rates (docs/domain.md, "Report figures")."""

    reported_in_rate: float
    dual_registration_rate: float
    dual_pairing_rate: float
    wish_claim_rate: float | None = Field(description="null for a unit (it publishes no wish)")
    wish_completion_rate: float
    five_ones_rate: float
    cadre_rate: float


class FiguresOut(BaseModel):
    """One scope's figures (``GET /summary``): counts, rates and the wish funnel."""

    scope: str
    name: str
    members: int
    reported_in: int
    dual_registered: int
    dual_paired: int
    five_ones_complete: int
    five_ones: dict[str, int] = Field(description="verified members per kind of the five ones")
    wishes: dict[str, int] = Field(description="wishes per state")
    verified_hours: float
    leading_cadres: int
    leading_cadres_active: int
    rates: Rates
    wish_funnel: dict[str, int | None] = Field(
        description="wishes that reached each stage; a unit's published is null"
    )


class RankedOut(FiguresOut):
    """One scope of a ranking: its place, the value ranked by, whether it lags behind."""

    rank: int
    value: float | None
    laggard: bool


class RankingOut(BaseModel):
    """``GET /summary/ranking``: the scopes one level below ``scope``, best first."""

    scope: str
    level: Level
    by: RankKey
    threshold: float
    ranked: list[RankedOut]
    laggards: list[str] = Field(description="the ranked scopes below the threshold")


class SummaryMemberOut(BaseModel):
    """A member counting in a scope, as reporting knows them (``GET /summary/members``)."""

    member_id: str
    name: str | None = Field(description="masked (张*); null once withdrawn")
    unit_code: str
    is_leader_cadre: bool


class TickOut(BaseModel):
    """What ``POST /ops/reporting/tick`` did (a count that is 0 is left out, but snapshots)."""

    snapshots: int
    claimed: int = 0
    skipped: int = 0
    reclaimed: int = 0
    failed: int = 0


# --- subscriptions ---------------------------------------------------------------------------


class SubscriptionIn(BaseModel):
    """What a leader asks for: the body of ``POST /api/v1/subscriptions``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    scope: str = Field(max_length=60)
    schedule: str = Field(default="campaign", min_length=1, max_length=100)
    channels: list[Literal["sms", "email"]] = Field(default=["email"], min_length=1)
    formats: list[Literal["html", "xlsx"]] = Field(default=["html", "xlsx"], min_length=1)
    name: str = Field(min_length=1, max_length=30)
    email: EmailStr | None = None
    phone: str | None = None

    @field_validator("scope")
    @classmethod
    def _scope(cls, value: str) -> str:
        check_role_scope("leader", value)  # the scopes a leader's figures come in
        kind, _, code = value.partition(":")
        # Reporting learns places from events, so a place not heard of yet may still come;
        # one outside Luoyang's districts never will (found by the access matrix).
        if kind in ("district", "community") and code[:6] not in DISTRICTS:
            raise ValueError(f"unknown district {code[:6]!r}: not one of Luoyang's")
        return value

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        return mobile(value) if value else None


class SubscriptionOut(BaseModel):
    """A subscription as the API shows it (contact details masked)."""

    id: str
    state: Literal["active", "cancelled"]
    scope: str
    schedule: str
    channels: list[str]
    formats: list[str]
    name: str
    email: str | None
    phone: str | None
    created_at: str


# --- reports ---------------------------------------------------------------------------------


class ReportFileOut(BaseModel):
    """One file of a report and where to download it."""

    name: str
    media_type: str
    url: str


class ReportOut(BaseModel):
    """A report built so far (``GET /reports``)."""

    id: str
    state: str = Field(description="done or failed")
    subscription_id: str | None = Field(description="null for a report built on demand")
    scope: str
    period_start: str
    period_end: str
    attempts: int
    headline: str | None
    files: list[ReportFileOut]


#: The media types of a report's files (:data:`services.reporting.builds.MEDIA`).
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_BINARY = {"schema": {"type": "string", "format": "binary"}}
A_REPORT_FILE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the file: the HTML report, a chart (PNG) or the workbook (xlsx)",
        "content": {"text/html": _BINARY, "image/png": _BINARY, XLSX: _BINARY},
    }
}
