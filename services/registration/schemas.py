"""Registration's HTTP types: what its routes take (``…In``) and what they answer (``…Out``).

Field names are the public contract (docs/contract.md): the web app and other clients read
them. Personal data is masked (``138****0000``) unless a route says otherwise; a withdrawn
member's personal fields are null. Times are ISO 8601 strings.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from shared.http import FromRow, Text

_IN = ConfigDict(extra="forbid", str_strip_whitespace=True)

# --- members and their community registrations ------------------------------------------------


class MemberIn(BaseModel):
    """A member's own registration (双注册)."""

    model_config = _IN

    name: str = Field(max_length=60)
    id_number: str = Field(max_length=30)
    phone: str = Field(max_length=30)
    email: str | None = Field(default=None, max_length=254)
    unit_code: str = Field(min_length=1, max_length=40)
    residence_community_code: str = Field(max_length=20)  # typed with spaces or dashes
    skills: list[Annotated[str, Field(max_length=40)]] = Field(default=[], max_length=20)
    availability: list[str] = Field(default=[], max_length=5)
    is_leader_cadre: bool = False
    consent: bool = False


class MemberPatch(BaseModel):
    model_config = _IN

    phone: str | None = Field(default=None, max_length=30)
    email: str | None = Field(default=None, max_length=254)
    skills: list[str] | None = Field(default=None, max_length=20)
    availability: list[str] | None = Field(default=None, max_length=5)
    residence_community_code: str | None = Field(default=None, max_length=20)


class Reason(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


class RegistrationIds(BaseModel):
    ids: list[uuid.UUID] = Field(min_length=1, max_length=5000)


class RegistrationOut(FromRow):
    """One community registration (社区报到) and where it stands."""

    id: Text
    community_code: str
    district_code: str
    role: str = Field(description="unit, residence or contact")
    state: str = Field(description="submitted, confirmed, rejected, transferred_out, cancelled")
    reason: str | None


class CommunityRegistrationOut(RegistrationOut):
    """A registration in a community's list, with whom it is for as staff see them."""

    member_id: str
    name: str | None
    phone: str | None = Field(description="masked")
    unit_code: str
    unit_name: str | None


class AccountOut(BaseModel):
    """One way a number may sign in."""

    role: str
    scope: str


class SessionOut(BaseModel):
    """A signed-in session: the bearer token and what it may do."""

    token: str
    token_type: str
    role: str
    scope: str
    expires_at: str
    accounts: list[AccountOut]


class MemberOut(FromRow):
    """A member as shown over HTTP: ID number and phone masked (unmasked only on an audited
    admin or operator read); null once the member has withdrawn."""

    id: Text
    state: str = Field(description="active or withdrawn")
    name: str | None
    id_number: str | None = Field(validation_alias="id_number_masked")
    phone: str | None = Field(validation_alias="phone_masked")
    unit_code: str
    residence_community_code: str
    skills: list[str]
    skills_other: list[str] = Field(description="其他专长: own words, not used by matching")
    availability: list[str]
    is_leader_cadre: bool
    registrations: list[RegistrationOut]


class RegisteredOut(MemberOut):
    """A new member; a member who registered themselves also gets their session."""

    session: SessionOut | None = Field(
        default=None, description="only when a registrant registered themselves"
    )


class RefusedId(BaseModel):
    id: str
    reason: str = Field(description="'not found' or 'already <state>'")


class ConfirmedOut(BaseModel):
    """How many reports-in were confirmed, and each refused id with why."""

    confirmed: int
    refused: list[RefusedId]


class UnitMemberOut(FromRow):
    """A unit's member as its organiser sees them: full name, masked phone."""

    id: Text
    name: str | None
    phone: str | None = Field(description="masked", validation_alias="phone_masked")
    is_leader_cadre: bool
    registrations: list[RegistrationOut]


# --- the directory ------------------------------------------------------------------------------


class DirectoryLoaded(BaseModel):
    """What loading a directory file did, row by row."""

    added: int
    changed: int
    unchanged: int


class CommunityOut(BaseModel):
    code: str
    name: str
    district_code: str
    district_name: str | None
    street_name: str | None
    phone: str | None = Field(description="the office's number (办公电话)")
    open: bool = Field(description="not closed today")


class UnitOut(BaseModel):
    code: str
    name: str
    level: str = Field(description="city or county")
    district_code: str
    community_code: str


class Choice(BaseModel):
    value: str
    label: str


class FiveOne(BaseModel):
    kind: str
    label: str


class Category(BaseModel):
    value: str
    sensitive: bool


class VocabularyOut(BaseModel):
    skills: list[str]
    availability: list[Choice]
    five_ones: list[FiveOne]
    synonyms: dict[str, list[str]]
    target_categories: list[Category]
    project_kinds: list[str]


# --- sign-in ----------------------------------------------------------------------------------


class CodeRequest(BaseModel):
    model_config = _IN

    phone: str = Field(min_length=1, max_length=30, description="the mobile to send a code to")


class SessionRequest(BaseModel):
    model_config = _IN

    phone: str = Field(min_length=1, max_length=30)
    code: str = Field(pattern=r"^\s*\d{6}\s*$", description="the 6-digit code from the SMS")
    role: str | None = Field(
        default=None, max_length=20, description="when the number has several accounts"
    )
    scope: str | None = Field(
        default=None, max_length=60, description="when one role has several scopes"
    )


class CodeSent(BaseModel):
    """The same answer for every valid mobile, known or not."""

    status: str
    detail: str


# --- rosters ----------------------------------------------------------------------------------


class RosterAccepted(BaseModel):
    id: str
    status: str


class Line(BaseModel):
    """A problem with one row of an uploaded file (rows numbered as the sheet shows them)."""

    row: int
    field: str
    message: str


class RosterOut(BaseModel):
    """Where an import stands: counts, the rejected rows and the notes on landed rows."""

    id: str
    unit_code: str
    filename: str
    status: str = Field(description="running, done or failed")
    total: int
    accepted: int
    rejected: int
    duplicates: int
    detail: str | None
    created_at: str
    finished_at: str | None
    error_count: int
    errors_total: int
    errors_kept: int
    errors: list[Line]
    notes_total: int
    notes_kept: int
    notes: list[Line]


# --- staff accounts ---------------------------------------------------------------------------


class StaffIn(BaseModel):
    """One staff account: ``POST /api/v1/staff``."""

    model_config = _IN

    name: str = Field(max_length=60)
    phone: str = Field(max_length=30)
    email: str | None = Field(default=None, max_length=254)
    role: str = Field(max_length=20)
    scope: str = Field(max_length=60)


class StaffOut(BaseModel):
    """A staff account, phone and e-mail masked."""

    id: str
    name: str
    role: str
    scope: str
    district_code: str | None
    phone: str
    email: str | None
    state: str = Field(description="active or disabled")
    created_at: str
    updated_at: str


class StaffImported(BaseModel):
    """What a staff import did, and the first problems of its rejected rows."""

    total: int
    accepted: int
    updated: int
    unchanged: int
    rejected: int
    errors_total: int
    errors: list[Line]


class OperatorTokenOut(FromRow):
    """A token made with ``servicemonth token create``, as ``token list`` shows it."""

    jti: str
    role: str
    scope: str
    label: str | None
    expires_at: dt.datetime
    revoked_at: dt.datetime | None
