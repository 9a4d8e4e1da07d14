"""Staff accounts: operators, unit organisers, community staff and leaders, each created by
the operator above them.

| caller | may create, list, disable |
|---|---|
| admin (``city``) | anything: operators of any district, leaders of any scope |
| operator (``district:X``) | community, unit and leader accounts whose scope lies in X |

A community lies in its district (the code's first six digits), a unit in the district the
directory gives it (a city-level unit in the city's, so only an admin staffs it), a leader
in the district of their scope. One account per (phone, role, scope); the mobile is sealed,
found by its HMAC (SMS-code sign-in) and shown masked, like a member's. Every change is
published (``staff.saved``, ``staff.disabled``) so notify keeps the contacts it sends to.
"""

from __future__ import annotations

import logging
import re
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.registration import rules
from services.registration.commands import CreateStaff
from services.registration.enrolment import (
    Directory,
    Error,
    community_is_open,
    field_checker,
    seal_contact,
)
from services.registration.models import Division, StaffAccount
from services.registration.schemas import Line, StaffImported, StaffOut
from services.registration.sessions import revoke_subject
from shared.auth import Forbidden, Principal
from shared.db import UnitOfWork
from shared.events import Event, StaffAccountDisabled, StaffAccountSaved
from shared.http import Conflict, Invalid, NotFound
from shared.pii import Sealer, mask_email, mask_name, mask_phone
from shared.runtime import Runtime
from shared.tabular import first_errors, read_table

log = logging.getLogger(__name__)

ROLES = ("operator", "unit", "community", "leader")
#: The kinds of scope each role takes (``district:X`` for an operator, and so on).
ROLE_SCOPES: dict[str, tuple[str, ...]] = {
    "operator": ("district",),
    "unit": ("unit",),
    "community": ("community",),
    "leader": ("city", "district", "unit", "community"),
}
#: What people type in the 角色 column, besides the role's own name.
ROLE_LABELS = {
    "区县管理员": "operator",
    "管理员": "operator",
    "单位": "unit",
    "单位组织员": "unit",
    "组织员": "unit",
    "社区": "community",
    "社区工作人员": "community",
    "社区工作者": "community",
    "领导": "leader",
}
_SCOPE = re.compile(r"^(city|district:\d{6}|unit:[\w-]{1,40}|community:\d{12})$")

#: The import's columns: (field, header).
COLUMNS: tuple[tuple[str, str], ...] = (
    ("name", "姓名"),
    ("phone", "手机号"),
    ("email", "电子邮箱"),
    ("role", "角色"),
    ("scope", "范围"),
)
REQUIRED = ("name", "phone", "role", "scope")
ALIASES: dict[str, str] = {
    **{name: name for name, _ in COLUMNS},
    **{header: name for name, header in COLUMNS},
    "手机号码": "phone",
    "邮箱": "email",
}
#: A staff list is a district's people, not a roster: more rows than this is a mistake.
MAX_ROWS = 5000


@dataclass(frozen=True)
class StaffValues:
    """A staff account's fields, validated and normalised; ``district`` from the scope."""

    name: str
    phone: str
    email: str | None
    role: str
    scope: str
    district: str | None


def staff_name(raw: str) -> str:
    """1–30 characters, no control characters (an office may add a title: 李红(主任))."""
    value = re.sub(r"\s+", " ", unicodedata.normalize("NFC", raw)).strip()
    if not value or len(value) > 30:
        raise ValueError("must be 1–30 characters")
    if any(unicodedata.category(c).startswith("C") for c in value):
        raise ValueError("must not hold control characters")
    return value


def staff_role(raw: str) -> str:
    value = raw.strip()
    role = ROLE_LABELS.get(value, value.lower())
    if role not in ROLES:
        raise ValueError(f"unknown role {value!r} (one of: {', '.join(ROLES)})")
    return role


def scope_of(raw: str, role: str) -> str:
    """The scope in full: a bare code is read by the role (``410303001001`` for community
    staff is ``community:410303001001``; for a leader, by its length)."""
    value = re.sub(r"\s+", "", unicodedata.normalize("NFKC", raw))
    if ":" not in value and value != "city":
        if role == "leader":
            kind = {6: "district", 12: "community"}.get(len(value), "unit")
        else:
            kind = ROLE_SCOPES[role][0]
        value = f"{kind}:{value}"
    if not _SCOPE.match(value):
        raise ValueError(f"bad scope {raw!r} (city, district:CODE, unit:CODE, community:CODE)")
    kind = value.split(":", 1)[0]
    if kind not in ROLE_SCOPES[role]:
        raise ValueError(f"a {role} account takes a scope of kind: {', '.join(ROLE_SCOPES[role])}")
    return value


class Places:
    """Where a scope lies: the directory's units and communities, and its districts."""

    def __init__(self, session: Session) -> None:
        self.directory = Directory(session)
        self._districts: dict[str, bool] = {}

    def district_of(self, scope: str, today: Any) -> str | None:
        """The scope's district (None for the city); ValueError for one not in the
        directory, or closed."""
        kind, _, code = scope.partition(":")
        if kind == "city":
            return None
        if kind == "district":
            if code not in self._districts:
                division = self.directory.session.get(Division, code)
                self._districts[code] = division is not None and division.kind == "district"
            if not self._districts[code]:
                raise ValueError(f"unknown district {code!r}")
            return code
        if kind == "community":
            community = self.directory.community(code)
            if not community_is_open(community, today):
                raise ValueError(f"unknown community {code!r}")
            return code[:6]
        unit = self.directory.unit(code)
        if unit is None or (unit.valid_to is not None and unit.valid_to < today):
            raise ValueError(f"unknown unit {code!r}")
        return unit.district_code


def validate(
    raw: Mapping[str, Any], places: Places, today: Any
) -> tuple[StaffValues | None, list[Error]]:
    """Check every field of ``raw``; return the values, or every error (field, message)."""
    errors: list[Error] = []
    check = field_checker({k: str(v) for k, v in raw.items() if v is not None}, errors)
    name = check("name", staff_name)
    phone = check("phone", rules.mobile)
    email = check("email", rules.email) if str(raw.get("email") or "").strip() else None
    role = check("role", staff_role)
    scope: str | None = None
    district: str | None = None
    if role is not None:
        scope = check("scope", scope_of, role)
    elif not str(raw.get("scope") or "").strip():  # a scope is read by its role, but it
        errors.append({"field": "scope", "message": "is required"})  # is required anyway
    if scope is not None:
        try:
            district = places.district_of(scope, today)
        except ValueError as exc:
            errors.append({"field": "scope", "message": str(exc)})
    if errors or name is None or phone is None or role is None or scope is None:
        return None, errors
    return StaffValues(name, phone, email, role, scope, district), []


def refusal(principal: Principal, role: str, scope: str, district: str | None) -> str | None:
    """Why ``principal`` may not create or change an account of ``role`` in ``scope``;
    None when it may (the operator above them, or an admin)."""
    if principal.role == "admin":
        return None
    if principal.role != "operator":
        return f"a {principal.role} token may not manage staff accounts"
    if role == "operator":
        return "only an admin creates or changes operators' accounts"
    if district != principal.code:
        return f"{scope} is outside your district {principal.code}"
    return None


def visible(principal: Principal, account: StaffAccount) -> bool:
    """Whether ``principal`` sees ``account`` at all (out of sight answers 404)."""
    if principal.role == "admin":
        return True
    return principal.role == "operator" and account.district_code == principal.code


def check_may_manage(principal: Principal, account: StaffAccount) -> None:
    """For an account the caller sees: 403 unless it is the operator above it."""
    reason = refusal(principal, account.role, account.scope, account.district_code)
    if reason is not None:
        raise Forbidden(reason)


def visible_account(uow: UnitOfWork, account_id: uuid.UUID, principal: Principal) -> StaffAccount:
    """The account, or 404 when unknown or out of the caller's sight."""
    account = uow.session.get(StaffAccount, account_id)
    if account is None or not visible(principal, account):
        raise NotFound(f"no staff account {account_id}")  # out of scope looks like absent
    return account


def managed_account(uow: UnitOfWork, account_id: uuid.UUID, principal: Principal) -> StaffAccount:
    """The account the caller manages: 404 out of sight, 403 when it only sees it."""
    account = visible_account(uow, account_id, principal)
    check_may_manage(principal, account)
    return account


# --- saving and publishing --------------------------------------------------------------------


def route(account: StaffAccount, home_district: str) -> str:
    """The district an account's events travel to: its own, or (the city) the deployment's."""
    return account.district_code or home_district


def contact_of(account: StaffAccount, sealer: Sealer) -> tuple[str, str | None]:
    """The account's phone and e-mail, opened."""
    phone = sealer.open(account.phone_sealed, "phone")
    email = sealer.open(account.email_sealed, "email") if account.email_sealed else None
    return phone, email


def saved_event(
    sealer: Sealer, account: StaffAccount, contact: tuple[str, str | None] | None = None
) -> StaffAccountSaved:
    """``staff.saved`` with the account's full picture (``contact`` when already open)."""
    phone, email = contact or contact_of(account, sealer)
    return StaffAccountSaved(
        account_id=account.id,
        role=account.role,  # pydantic checks it against StaffRole
        scope=account.scope,
        district=account.district_code,
        state="disabled" if account.state == "disabled" else "active",
        contact=seal_contact(sealer, account.name, phone, email),
        name_masked=mask_name(account.name),
    )


def publish_saved(
    uow: UnitOfWork,
    sealer: Sealer,
    account: StaffAccount,
    home_district: str,
    contact: tuple[str, str | None] | None = None,
) -> None:
    """Emit :func:`saved_event` for ``account`` in this transaction."""
    uow.emit(saved_event(sealer, account, contact), district=route(account, home_district))


def create(uow: UnitOfWork, sealer: Sealer, values: StaffValues) -> StaffAccount:
    """A new active account (the caller has checked that none has this phone, role, scope)."""
    now = uow.now()
    account = StaffAccount(
        id=uuid.uuid4(),
        name=values.name,
        role=values.role,
        scope=values.scope,
        district_code=values.district,
        phone_sealed=sealer.seal(values.phone, "phone"),
        phone_hmac=sealer.digest(values.phone),
        phone_masked=mask_phone(values.phone),
        email_sealed=sealer.seal(values.email, "email") if values.email else None,
        state="active",
        created_at=now,
        updated_at=now,
    )
    uow.session.add(account)
    return account


def create_account(cmd: CreateStaff, rt: Runtime) -> StaffOut:
    """A new account, checked field by field (422), made only by the operator above it or an
    admin (403); 409 naming the account when this phone has the role in this scope."""
    with rt.uow() as uow:
        values, errors = validate(cmd.values, Places(uow.session), uow.now().date())
        if values is None:
            raise Invalid("the staff account cannot be created", errors)
        reason = refusal(cmd.principal, values.role, values.scope, values.district)
        if reason is not None:
            raise Forbidden(reason)
        found = existing(uow, rt.sealer, values)
        if found is not None:
            raise Conflict(
                f"this phone already has a {values.role} account for {values.scope}",
                id=str(found.id),
                state=found.state,
            )
        account = create(uow, rt.sealer, values)
        publish_saved(uow, rt.sealer, account, rt.settings.district, (values.phone, values.email))
        uow.commit()
        return view(account, rt.sealer)


def update_details(
    uow: UnitOfWork, sealer: Sealer, account: StaffAccount, values: StaffValues
) -> bool:
    """Take ``values``' name and e-mail (phone, role and scope are the account's identity);
    True when something changed."""
    _, email = contact_of(account, sealer)
    if (account.name, email) == (values.name, values.email):
        return False
    account.name = values.name
    account.email_sealed = sealer.seal(values.email, "email") if values.email else None
    account.updated_at = uow.now()
    return True


def existing(uow: UnitOfWork, sealer: Sealer, values: StaffValues) -> StaffAccount | None:
    """The account with ``values``' phone, role and scope, if there is one."""
    return uow.session.scalar(
        select(StaffAccount).where(
            StaffAccount.phone_hmac == sealer.digest(values.phone),
            StaffAccount.role == values.role,
            StaffAccount.scope == values.scope,
        )
    )


def disable(uow: UnitOfWork, account: StaffAccount, home_district: str) -> bool:
    """Disable the account: its sessions stop working now (same transaction) and notify
    stops sending to it. False when it was disabled already (nothing happens twice)."""
    if account.state == "disabled":
        return False
    account.state = "disabled"
    account.updated_at = uow.now()
    revoke_subject(uow, f"staff:{account.id}")  # sign-in's own revocation (auth.revoked)
    uow.emit(StaffAccountDisabled(account_id=account.id), district=route(account, home_district))
    return True


def enable(uow: UnitOfWork, sealer: Sealer, account: StaffAccount, home_district: str) -> bool:
    """Enable a disabled account again (it signs in anew); False when it was active."""
    if account.state == "active":
        return False
    account.state = "active"
    account.updated_at = uow.now()
    publish_saved(uow, sealer, account, home_district)
    return True


def view(account: StaffAccount, sealer: Sealer) -> StaffOut:
    """An account as shown over HTTP: phone and e-mail masked."""
    email = sealer.open(account.email_sealed, "email") if account.email_sealed else None
    return StaffOut(
        id=str(account.id),
        name=account.name,
        role=account.role,
        scope=account.scope,
        district_code=account.district_code,
        phone=account.phone_masked,
        email=mask_email(email) if email else None,
        state=account.state,
        created_at=account.created_at.isoformat(),
        updated_at=account.updated_at.isoformat(),
    )


# --- import -----------------------------------------------------------------------------------


@dataclass
class ImportResult:
    """What an import did: counts of rows, and each rejected row's problems."""

    total: int = 0
    accepted: int = 0  # new accounts
    updated: int = 0  # known accounts whose name or e-mail changed
    unchanged: int = 0
    rejected: int = 0
    errors: list[dict[str, Any]] | None = None

    def answer(self) -> StaffImported:
        """The counts, and the first :data:`~shared.tabular.MAX_ERRORS` problems (as a
        roster's: ``errors_total`` counts them all)."""
        errors = self.errors or []
        return StaffImported(
            total=self.total,
            accepted=self.accepted,
            updated=self.updated,
            unchanged=self.unchanged,
            rejected=self.rejected,
            errors_total=len(errors),
            errors=[Line.model_validate(e) for e in first_errors(errors)],
        )


def field_of(header: str) -> str | None:
    """The field a header names (Chinese or English, any case), or None for other columns."""
    key = header.strip().lstrip("\ufeff")
    return ALIASES.get(key) or ALIASES.get(key.lower())


def read_rows(data: bytes) -> list[tuple[int, dict[str, str]]]:
    """The file's rows (numbered as the spreadsheet shows them, the header row 1) as
    ``{field: text}``; :class:`Invalid` for a file that cannot be read, lacks a column or
    holds more than :data:`MAX_ROWS` rows (nothing of it is imported)."""
    try:
        table = read_table(data, {}, max_rows=MAX_ROWS)  # over the cap: refused whole
    except Invalid:
        raise
    except Exception as exc:  # a damaged workbook: zip, XML or cell errors
        raise Invalid(f"the file cannot be read as xlsx or CSV ({type(exc).__name__})") from None
    columns: dict[str, str] = {}
    for header in table.header:
        name = field_of(header)
        if name is not None and name in columns:
            message = f"{columns[name]} and {header} are the same column"
            raise Invalid("the header names a column twice", [{"field": name, "message": message}])
        if name is not None:
            columns[name] = header
    missing = [f for f in REQUIRED if f not in columns]
    if missing:
        labels = dict(COLUMNS)
        raise Invalid(
            "the first row must be the header; it lacks required columns",
            [{"field": f, "message": f"no {labels[f]} ({f}) column"} for f in missing],
        )
    try:
        rows = list(table.rows)
    except Invalid:
        raise
    except Exception as exc:  # the file breaks off part-way
        raise Invalid(f"the file cannot be read ({type(exc).__name__})") from None
    return [(n, {f: row.get(h, "") for f, h in columns.items()}) for n, row in rows]


def _known(
    session: Session, keys: Iterable[tuple[str, str, str]]
) -> dict[tuple[str, str, str], StaffAccount]:
    """The accounts among ``keys`` (phone HMAC, role, scope), chunked."""
    wanted = list(keys)
    found: dict[tuple[str, str, str], StaffAccount] = {}
    for start in range(0, len(wanted), 500):
        query = select(StaffAccount).where(
            tuple_(StaffAccount.phone_hmac, StaffAccount.role, StaffAccount.scope).in_(
                wanted[start : start + 500]
            )
        )
        found |= {(a.phone_hmac, a.role, a.scope): a for a in session.scalars(query)}
    return found


def import_file(
    data: bytes,
    uow_factory: Callable[[], UnitOfWork],
    sealer: Sealer,
    principal: Principal,
    home_district: str,
) -> ImportResult:
    """Create or update the file's accounts in one transaction; bad rows are listed by row
    number and the good ones land all the same. Loading the same file again changes
    nothing: a row whose phone, role and scope name an account updates its name and e-mail.

    If a concurrent import creates one of these accounts meanwhile, the unique key refuses
    the insert and the file is sorted again against what exists now.
    """
    rows = read_rows(data)
    for attempt in range(3):
        try:
            with uow_factory() as uow:
                result = _apply(rows, uow, sealer, principal, home_district)
                uow.commit()
        except IntegrityError:
            if attempt == 2:
                raise
            log.warning("staff import: an account was created meanwhile; retrying")
            continue
        log.info(
            "staff import by %s: %d accepted, %d updated, %d unchanged, %d rejected",
            principal.scope, result.accepted, result.updated, result.unchanged, result.rejected,
        )  # fmt: skip
        return result
    raise AssertionError("unreachable")


def _apply(
    rows: list[tuple[int, dict[str, str]]],
    uow: UnitOfWork,
    sealer: Sealer,
    principal: Principal,
    home_district: str,
) -> ImportResult:
    result = ImportResult(total=len(rows), errors=[])
    assert result.errors is not None
    places, today = Places(uow.session), uow.now().date()
    good: list[tuple[StaffValues, tuple[str, str, str]]] = []
    first_row: dict[tuple[str, str, str], int] = {}
    for number, raw in rows:
        values, errors = validate(raw, places, today)
        if values is not None:
            reason = refusal(principal, values.role, values.scope, values.district)
            if reason is not None:
                errors = [{"field": "scope", "message": reason}]
        if values is not None and not errors:
            key = (sealer.digest(values.phone), values.role, values.scope)
            if key in first_row:
                message = f"the same phone, role and scope as row {first_row[key]}"
                errors = [{"field": "phone", "message": message}]
            else:
                first_row[key] = number
                good.append((values, key))
        if errors:
            result.rejected += 1
            result.errors += [{"row": number, **e} for e in errors]
    known = _known(uow.session, [key for _, key in good])
    # One bulk insert for the file's events (one emit per row would flush row by row).
    events: list[tuple[Event, str]] = []
    for values, key in good:
        account = known.get(key)
        if account is None:
            account = create(uow, sealer, values)
            result.accepted += 1
        elif update_details(uow, sealer, account, values):
            result.updated += 1
        else:
            result.unchanged += 1
            continue
        event = saved_event(sealer, account, (values.phone, values.email))
        events.append((event, route(account, home_district)))
    uow.emit_many(events)
    return result
