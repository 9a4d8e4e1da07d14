"""What callers ask pairing to do: one small type per use case, handled by the table in
:mod:`services.pairing.handlers`. A command carries the caller's :class:`Principal` when who
calls decides what they may do or see; it holds no logic."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from services.pairing.schemas import (
    MembershipOut,
    NeedOut,
    PairingOut,
    PairingRunOut,
    ProjectOut,
    RecordOut,
    TargetOut,
    TeamOut,
    UploadOut,
    WishOut,
)
from shared.auth import Principal
from shared.messagebus import Command

R = TypeVar("R")

# Commands that take the same arguments share a base (a base is not a command itself).


@dataclass(frozen=True, kw_only=True)
class _Publish(Command[R]):
    principal: Principal
    community_code: str
    values: Mapping[str, Any]


@dataclass(frozen=True, kw_only=True)
class _Upload(Command[UploadOut]):
    principal: Principal
    community_code: str
    data: bytes


@dataclass(frozen=True, kw_only=True)
class _ForPairing(Command[PairingOut]):
    principal: Principal
    pairing_id: uuid.UUID


@dataclass(frozen=True, kw_only=True)
class _ForWish(Command[WishOut]):
    principal: Principal
    wish_id: uuid.UUID


# --- 双对接: what a community publishes -------------------------------------------------------


class PublishTarget(_Publish[TargetOut]):
    """服务对象 — a resident in need, stored masked; sensitive categories need consent."""


class PublishNeed(_Publish[NeedOut]):
    """需求清单 — one item of the needs list; the community is paired again at once."""


class PublishProject(_Publish[ProjectOut]):
    """服务项目; the community is paired again at once."""


class CreateTeam(_Publish[TeamOut]):
    """服务团队 — a community's service team by speciality."""


class UploadNeeds(_Upload):
    """A needs list from a spreadsheet (xlsx or CSV bytes)."""


class UploadProjects(_Upload):
    """Service projects from a spreadsheet (xlsx or CSV bytes)."""


# --- 双对接: runs and pairings -----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RunPairing(Command[PairingRunOut]):
    """Queue a run pairing the members of a scope (``community:CODE``, ``district:CODE`` or
    ``city``) for pairing's worker; answers the run, queued."""

    principal: Principal
    scope: str


@dataclass(frozen=True, kw_only=True)
class ExecutePairingRun(Command[str]):
    """Do a queued run (the ``pairing.run`` task); answers its state. A run already done
    or failed does nothing; one cut short (a worker lost) is done again, as a run only adds."""

    run_id: uuid.UUID


@dataclass(frozen=True, kw_only=True)
class PairByStaff(Command[PairingOut]):
    """A staff override: pair a member with a need or a project (exactly one of them)."""

    principal: Principal
    member_id: uuid.UUID
    need_id: uuid.UUID | None = None
    project_id: uuid.UUID | None = None


class RemovePairing(_ForPairing):
    """Staff end a pairing; it is never offered to that member again."""


class DeclinePairing(_ForPairing):
    """The member declines a pairing; the next run pairs them elsewhere."""


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


class SubmitWish(_ForWish):
    """Send a collected wish for review (待审核)."""


class PublishWish(_ForWish):
    """发布 — a reviewed wish, or a collected one straight away."""


@dataclass(frozen=True, kw_only=True)
class RejectWish(_ForWish):
    """The review refuses the wish, with the reason."""

    reason: str


@dataclass(frozen=True, kw_only=True)
class WithdrawWish(_ForWish):
    """Take back a published wish nobody has claimed."""

    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class ClaimWish(_ForWish):
    """认领 — for ``member_id`` (a member only for themself)."""

    member_id: uuid.UUID


class CancelClaim(_ForWish):
    """The claiming member (the principal) gives the wish back."""


@dataclass(frozen=True, kw_only=True)
class RevokeClaim(_ForWish):
    """Staff take a claimed wish back from its member."""

    reason: str | None = None


class FulfilWish(_ForWish):
    """The claiming member (the principal) reports the wish fulfilled."""


class ConfirmWish(_ForWish):
    """Staff confirm the fulfilment; the member's wish item of the five ones is filled."""


@dataclass(frozen=True, kw_only=True)
class EvaluateWish(_ForWish):
    """评价 — the community rates the fulfilled wish (1–5)."""

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
