"""What callers ask registration to do: one small type per use case, each saying what
handling it returns, handled by the table in :mod:`services.registration.handlers`. A
command carries the caller's :class:`Principal` when who calls decides what they may do.
No logic here."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from services.registration.rosters import Summary
from services.registration.schemas import (
    CodeSent,
    ConfirmedOut,
    DirectoryLoaded,
    MemberOut,
    RegisteredOut,
    RegistrationOut,
    RosterAccepted,
    SessionOut,
    StaffImported,
    StaffOut,
)
from shared.auth import Principal
from shared.messagebus import Command

# --- members (双注册) ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RegisterMember(Command[RegisteredOut]):
    """A member registers themselves (a registrant session, with consent), or staff register
    one in their scope; ``values`` are :class:`~services.registration.schemas.MemberIn`'s."""

    principal: Principal
    values: Mapping[str, Any]


@dataclass(frozen=True, kw_only=True)
class _ForMember(Command[MemberOut]):
    """Their common arguments (a base, not a command itself)."""

    principal: Principal
    member_id: uuid.UUID


class ReadMemberUnmasked(_ForMember):
    """An admin or operator reads a member's ID number and phone in clear (audited)."""


@dataclass(frozen=True, kw_only=True)
class UpdateMember(_ForMember):
    """Change phone, e-mail, skills, availability or residence (only the fields given)."""

    changes: Mapping[str, Any]


class WithdrawMember(_ForMember):
    """退出: the member's personal data erased here and, through the event, everywhere."""


# --- community registrations (社区报到) ---------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _ForRegistration(Command[RegistrationOut]):
    """Their common arguments (a base, not a command itself)."""

    principal: Principal
    registration_id: uuid.UUID


class ConfirmRegistration(_ForRegistration):
    """报到确认: community staff confirm that the member reported in."""


@dataclass(frozen=True, kw_only=True)
class ConfirmRegistrations(Command[ConfirmedOut]):
    """Confirm many reports-in at once, each confirmed or listed with why not."""

    principal: Principal
    registration_ids: list[uuid.UUID]


@dataclass(frozen=True, kw_only=True)
class RejectRegistration(_ForRegistration):
    """The community turns the report-in down, with the reason."""

    reason: str


# --- the directory ----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class LoadDirectory(Command[DirectoryLoaded]):
    """Load a directory file (CSV or xlsx bytes); an operator only its district's rows, the
    operator at the server (``servicemonth directory load``, no principal) every row."""

    principal: Principal | None
    data: bytes


# --- sign-in ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RequestSignInCode(Command[CodeSent]):
    """Send a sign-in code by SMS to ``phone`` (the same answer for every valid mobile)."""

    phone: str
    address: str  # who asks, for the per-address limit


@dataclass(frozen=True, kw_only=True)
class SignIn(Command[SessionOut]):
    """Open a session with the SMS code, as one of the number's accounts."""

    phone: str
    code: str
    role: str | None = None
    scope: str | None = None


@dataclass(frozen=True, kw_only=True)
class SignOut(Command[None]):
    """The caller's token stops working in every service."""

    principal: Principal


@dataclass(frozen=True, kw_only=True)
class IssueOperatorToken(Command[str]):
    """The operator at the server makes a bearer token (``servicemonth token create``); the
    signed token, shown once."""

    role: str
    scope: str
    label: str | None
    days: int


@dataclass(frozen=True, kw_only=True)
class RevokeOperatorToken(Command[None]):
    """Revoke a token made with the CLI, by the id ``token list`` shows."""

    token_id: str


# --- rosters (花名册) ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class UploadRoster(Command[RosterAccepted]):
    """Keep a unit's roster (sealed) and queue its import."""

    principal: Principal
    unit_code: str | None
    filename: str
    data: bytes


@dataclass(frozen=True, kw_only=True)
class ImportRoster(Command[str]):
    """Import a stored roster (the Celery task); returns its status, or ``missing``."""

    roster_id: uuid.UUID


@dataclass(frozen=True)
class RosterImported:
    """What ``servicemonth roster import`` prints: the roster, its summary, and the first
    rejected rows and notes (``{row, field, message}``)."""

    roster_id: uuid.UUID
    summary: Summary
    errors: list[dict[str, Any]]
    notes: list[dict[str, Any]]


@dataclass(frozen=True, kw_only=True)
class ImportRosterFile(Command[RosterImported]):
    """The operator at the server imports a file for a unit now, in this process, told of
    each chunk through ``progress``; ``show`` rejected rows and notes come back."""

    unit_code: str
    filename: str
    data: bytes
    show: int = 20
    progress: Callable[[int], Any] | None = None


@dataclass(frozen=True, kw_only=True)
class ExportRosterErrors(Command[bytes]):
    """The rejected rows as an xlsx with 错误原因: unmasked personal data, so audited."""

    principal: Principal
    roster_id: uuid.UUID


@dataclass(frozen=True, kw_only=True)
class ResendStuckRosters(Command[int]):
    """The consume process's sweep: queue again the imports whose task was lost; how many."""


# --- staff accounts ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CreateStaff(Command[StaffOut]):
    """A new staff account, made by the operator above it (or an admin)."""

    principal: Principal
    values: Mapping[str, Any]


@dataclass(frozen=True, kw_only=True)
class ImportStaff(Command[StaffImported]):
    """Create or update many staff accounts from one file (xlsx or CSV bytes)."""

    principal: Principal
    data: bytes


@dataclass(frozen=True, kw_only=True)
class _ForStaffAccount(Command[StaffOut]):
    """Their common arguments (a base, not a command itself)."""

    principal: Principal
    account_id: uuid.UUID


class DisableStaff(_ForStaffAccount):
    """The account can no longer sign in; its sessions end."""


class EnableStaff(_ForStaffAccount):
    """The account may sign in again."""
