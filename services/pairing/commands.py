"""What callers ask pairing to do: one small type per use case, handled by the table in
:mod:`services.pairing.handlers`. A command carries the caller's :class:`Principal` when who
calls decides what they may do or see; it holds no logic."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.pairing.schemas import (
    MembershipOut,
    NeedOut,
    PairingOut,
    ProjectOut,
    RecordOut,
    RunOut,
    TargetOut,
    TeamOut,
    UploadOut,
    WishOut,
)
from shared.auth import Principal
from shared.messagebus import Command

# --- 双对接: what a community publishes -------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PublishTarget(Command[TargetOut]):
    """服务对象 — a resident in need, stored masked; sensitive categories need consent."""

    principal: Principal
    community_code: str
    values: Mapping[str, Any]


@dataclass(frozen=True, kw_only=True)
class PublishNeed(Command[NeedOut]):
    """需求清单 — one item of the needs list; the community is paired again at once."""

    principal: Principal
    community_code: str
    values: Mapping[str, Any]


@dataclass(frozen=True, kw_only=True)
class PublishProject(Command[ProjectOut]):
    """服务项目; the community is paired again at once."""

    principal: Principal
    community_code: str
    values: Mapping[str, Any]


@dataclass(frozen=True, kw_only=True)
class CreateTeam(Command[TeamOut]):
    """服务团队 — a community's service team by speciality."""

    principal: Principal
    community_code: str
    values: Mapping[str, Any]


@dataclass(frozen=True, kw_only=True)
class UploadNeeds(Command[UploadOut]):
    """A needs list from a spreadsheet (xlsx or CSV bytes)."""

    principal: Principal
    community_code: str
    data: bytes


@dataclass(frozen=True, kw_only=True)
class UploadProjects(Command[UploadOut]):
    """Service projects from a spreadsheet (xlsx or CSV bytes)."""

    principal: Principal
    community_code: str
    data: bytes


# --- 双对接: runs and pairings -----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RunPairing(Command[RunOut]):
    """Pair the members of a scope (``community:CODE``, ``district:CODE`` or ``city``)."""

    principal: Principal
    scope: str


@dataclass(frozen=True, kw_only=True)
class PairByStaff(Command[PairingOut]):
    """A staff override: pair a member with a need or a project (exactly one of them)."""

    principal: Principal
    member_id: uuid.UUID
    need_id: uuid.UUID | None = None
    project_id: uuid.UUID | None = None


@dataclass(frozen=True, kw_only=True)
class RemovePairing(Command[PairingOut]):
    """Staff end a pairing; it is never offered to that member again."""

    principal: Principal
    pairing_id: uuid.UUID


@dataclass(frozen=True, kw_only=True)
class DeclinePairing(Command[PairingOut]):
    """The member declines a pairing; the next run pairs them elsewhere."""

    principal: Principal
    pairing_id: uuid.UUID


# --- 微心愿 ------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CollectWish(Command[WishOut]):
    """征集 — community staff record a resident's wish."""

    principal: Principal
    community_code: str
    title: str
    description: str | None = None
    category: str | None = None
    beneficiary_category: str | None = None
    deadline: dt.date | None = None


@dataclass(frozen=True, kw_only=True)
class SubmitWish(Command[WishOut]):
    """Send a collected wish for review (待审核)."""

    principal: Principal
    wish_id: uuid.UUID


@dataclass(frozen=True, kw_only=True)
class PublishWish(Command[WishOut]):
    """发布 — a reviewed wish, or a collected one straight away."""

    principal: Principal
    wish_id: uuid.UUID


@dataclass(frozen=True, kw_only=True)
class RejectWish(Command[WishOut]):
    """The review refuses the wish, with the reason."""

    principal: Principal
    wish_id: uuid.UUID
    reason: str


@dataclass(frozen=True, kw_only=True)
class WithdrawWish(Command[WishOut]):
    """Take back a published wish nobody has claimed."""

    principal: Principal
    wish_id: uuid.UUID
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class ClaimWish(Command[WishOut]):
    """认领 — for ``member_id`` (a member only for themself)."""

    principal: Principal
    wish_id: uuid.UUID
    member_id: uuid.UUID


@dataclass(frozen=True, kw_only=True)
class CancelClaim(Command[WishOut]):
    """The claiming member (the principal) gives the wish back."""

    principal: Principal
    wish_id: uuid.UUID


@dataclass(frozen=True, kw_only=True)
class RevokeClaim(Command[WishOut]):
    """Staff take a claimed wish back from its member."""

    principal: Principal
    wish_id: uuid.UUID
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class FulfilWish(Command[WishOut]):
    """The claiming member (the principal) reports the wish fulfilled."""

    principal: Principal
    wish_id: uuid.UUID


@dataclass(frozen=True, kw_only=True)
class ConfirmWish(Command[WishOut]):
    """Staff confirm the fulfilment; the member's wish item of the five ones is filled."""

    principal: Principal
    wish_id: uuid.UUID


@dataclass(frozen=True, kw_only=True)
class EvaluateWish(Command[WishOut]):
    """评价 — the community rates the fulfilled wish (1–5)."""

    principal: Principal
    wish_id: uuid.UUID
    rating: int


@dataclass(frozen=True, kw_only=True)
class SweepWishes(Command[dict[str, int]]):
    """Claims past their time return, published wishes past their deadline expire; answers
    how many of each (``claims_expired``, ``wishes_expired``)."""

    batch: int = 500


# --- 五个一 ------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RecordActivity(Command[RecordOut]):
    """One of the five ones, recorded by the member or by staff (submitted)."""

    principal: Principal
    member_id: uuid.UUID
    kind: str
    community_code: str
    day: dt.date
    hours: float | None = None
    start: dt.time | None = None
    end: dt.time | None = None
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class VerifyActivity(Command[RecordOut]):
    """核实 — community staff confirm the service took place."""

    principal: Principal
    record_id: uuid.UUID


@dataclass(frozen=True, kw_only=True)
class ReturnActivity(Command[RecordOut]):
    """退回 — not accepted, with the reason."""

    principal: Principal
    record_id: uuid.UUID
    reason: str


@dataclass(frozen=True, kw_only=True)
class JoinTeam(Command[MembershipOut]):
    """A member asks to join a team; staff adding a member confirm at once."""

    principal: Principal
    team_id: uuid.UUID
    member_id: uuid.UUID


@dataclass(frozen=True, kw_only=True)
class ConfirmTeamMember(Command[MembershipOut]):
    """Staff confirm a join request; the member's team item of the five ones is filled."""

    principal: Principal
    team_id: uuid.UUID
    member_id: uuid.UUID


@dataclass(frozen=True, kw_only=True)
class LeaveTeam(Command[MembershipOut]):
    """The member leaves (or withdraws the request); staff may remove them."""

    principal: Principal
    team_id: uuid.UUID
    member_id: uuid.UUID


#: The commands done to one wish, answered with the wish as the caller may see it.
WishCommand = (
    SubmitWish
    | PublishWish
    | RejectWish
    | WithdrawWish
    | ClaimWish
    | CancelClaim
    | RevokeClaim
    | FulfilWish
    | ConfirmWish
    | EvaluateWish
)
