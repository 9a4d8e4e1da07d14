"""Signing in (手机号 + 验证码): codes, limits, sessions, sign-out and revocation.

- A code is 6 digits, valid :data:`CODE_TTL`, :data:`CODE_TRIES` tries, one live code per
  number; only its keyed hash is stored. It is sent to any valid mobile, so asking for a code
  tells a stranger nothing about who is registered; notify sends it (``auth.code_requested``).
- Limits (:data:`CODE_LIMITS`, :data:`REGISTER_LIMITS`) are counted in this database, so
  they hold across processes and workers; going over answers 429 with ``Retry-After``.
- A session is a signed token (:mod:`shared.tokens`) for one of the number's accounts: the
  member with that phone, or a staff account; a number with neither gets a registrant
  session that may only register itself.
- Sign-out, a disabled account or a withdrawn member revoke tokens here at once and in the
  other services when ``auth.revoked`` arrives.
"""

from __future__ import annotations

import hmac
import secrets
import uuid
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select, text

from services.registration.models import IssuedToken, Member, RateHit, SignInCode, StaffAccount
from services.registration.schemas import SessionOut
from shared import tokens
from shared.auth import REGISTRANT, Principal, Unauthorized, revoke, subject_key
from shared.config import Settings, settings
from shared.db import UnitOfWork
from shared.events import SealedContact, SignInCodeRequested, TokensRevoked
from shared.http import Invalid, TooManyRequests
from shared.pii import Sealer, mask_phone, mobile

CODE_TTL = timedelta(minutes=5)
CODE_TRIES = 5

#: (how many, in what window) per key: a code per number about once a minute and ten a day;
#: an address may ask for codes for many numbers (a shared office), not without end; a
#: verified phone may try to register a few times a day (each refusal may tell a holder).
Limits = tuple[tuple[int, timedelta], ...]
CODE_LIMITS: Limits = ((1, timedelta(minutes=1)), (10, timedelta(days=1)))
ADDRESS_LIMITS: Limits = ((30, timedelta(hours=1)),)
REGISTER_LIMITS: Limits = ((5, timedelta(days=1)),)

WRONG_CODE = "the code is wrong or has expired; ask for a new one"
#: The one answer to a code request, whoever the number belongs to.
CODE_SENT = {
    "status": "accepted",
    "detail": "如果该号码可以登录，验证码已通过短信发送，5分钟内有效。",
}


@dataclass(frozen=True)
class Account:
    """One way a number may sign in: as a member, or under a staff account's role."""

    subject: str
    role: str
    scope: str


@dataclass(frozen=True)
class Session:
    token: str
    claims: tokens.Claims
    accounts: list[Account]


def _invalid_phone(raw: str) -> str:
    try:
        return mobile(raw)
    except ValueError as exc:
        raise Invalid("not a mobile number", [{"field": "phone", "message": str(exc)}]) from None


def limit(uow: UnitOfWork, key: str, limits: Limits) -> None:
    """Count one request under ``key`` (``phone:HMAC``, ``address:HMAC``…), or refuse with
    429 when one of ``limits`` is reached. PostgreSQL serialises the count per key with an
    advisory lock; SQLite's writers are serialised already (BEGIN IMMEDIATE)."""
    now = uow.now()
    if not uow.db.is_sqlite:
        uow.session.execute(
            text("SELECT pg_advisory_xact_lock(:k)"), {"k": zlib.crc32(key.encode())}
        )
    longest = max(window for _, window in limits)
    uow.session.execute(delete(RateHit).where(RateHit.key == key, RateHit.at < now - longest))
    for most, window in limits:
        count, oldest = uow.session.execute(
            select(func.count(), func.min(RateHit.at)).where(
                RateHit.key == key, RateHit.at >= now - window
            )
        ).one()
        if count >= most:
            wait = int((oldest + window - now).total_seconds()) + 1
            raise TooManyRequests(f"too many requests; try again in {wait} s", wait)
    uow.session.add(RateHit(key=key, at=now))
    uow.session.flush()


def _code_hmac(sealer: Sealer, phone_hmac: str, code: str) -> str:
    return sealer.digest(f"sign-in-code:{phone_hmac}:{code}")


def request_code(
    uow: UnitOfWork, sealer: Sealer, raw_phone: str, address: str, district: str
) -> None:
    """Make the number's one live code and have notify send it. The same work and the same
    answer whether or not the number belongs to anyone."""
    phone = _invalid_phone(raw_phone)
    phone_hmac = sealer.digest(phone)
    limit(uow, f"address:{sealer.digest(address)}", ADDRESS_LIMITS)
    limit(uow, f"phone:{phone_hmac}", CODE_LIMITS)
    code = f"{secrets.randbelow(10**6):06d}"
    expires_at = uow.now() + CODE_TTL
    row = uow.session.get(SignInCode, phone_hmac)
    if row is None:
        row = SignInCode(phone_hmac=phone_hmac)
        uow.session.add(row)
    row.code_hmac = _code_hmac(sealer, phone_hmac, code)
    row.expires_at = expires_at
    row.attempts = 0
    uow.emit(
        SignInCodeRequested(
            request_id=uuid.uuid4(),
            contact=SealedContact(
                sealed=SealedContact.seal(sealer, "", phone, None), phone_masked=mask_phone(phone)
            ),
            code=sealer.seal(code, SignInCodeRequested.CODE_CONTEXT),
            expires_at=expires_at,
        ),
        district=district,
    )


def accounts_of(uow: UnitOfWork, phone_hmac: str) -> list[Account]:
    """Every account the number may sign in as: its member, then its staff accounts."""
    found: list[Account] = []
    member_id = uow.session.scalar(
        select(Member.id)
        .where(Member.phone_hmac == phone_hmac, Member.state == "active")
        .order_by(Member.created_at.desc())
        .limit(1)
    )
    if member_id is not None:
        found.append(Account(f"member:{member_id}", "member", f"member:{member_id}"))
    staff = uow.session.scalars(
        select(StaffAccount)
        .where(StaffAccount.phone_hmac == phone_hmac, StaffAccount.state == "active")
        .order_by(StaffAccount.role, StaffAccount.scope)
    )
    found += [Account(f"staff:{s.id}", s.role, s.scope) for s in staff]
    return found


def _choose(
    accounts: list[Account], phone_hmac: str, role: str | None, scope: str | None
) -> Account:
    if role == REGISTRANT or not accounts:
        if role not in (None, REGISTRANT) or any(a.role == "member" for a in accounts):
            raise _no_such_role(accounts, role)
        return Account(f"phone:{phone_hmac}", REGISTRANT, f"phone:{phone_hmac[:16]}")
    matching = [
        a for a in accounts if (role is None or a.role == role) and scope in (None, a.scope)
    ]
    if len(matching) == 1:
        return matching[0]
    raise _no_such_role(accounts, role)


def _no_such_role(accounts: list[Account], role: str | None) -> Invalid:
    choices = ", ".join(f"{a.role} ({a.scope})" for a in accounts) or REGISTRANT
    return Invalid(
        "choose the role to sign in with",
        [{"field": "role", "message": f"this number signs in as one of: {choices}"}],
        choices=[{"role": a.role, "scope": a.scope} for a in accounts],
    )


def sign_in(
    uow: UnitOfWork,
    sealer: Sealer,
    config: Settings,
    raw_phone: str,
    code: str,
    role: str | None,
    scope: str | None,
) -> Session:
    """Check the code (5 tries, 5 minutes, used once) and open a session for the chosen
    account. A wrong code counts a try and is committed even though the call fails."""
    phone = _invalid_phone(raw_phone)
    phone_hmac = sealer.digest(phone)
    row = uow.session.get(SignInCode, phone_hmac)
    if row is None or row.expires_at <= uow.now() or row.attempts >= CODE_TRIES:
        raise Unauthorized(WRONG_CODE)
    if not hmac.compare_digest(row.code_hmac, _code_hmac(sealer, phone_hmac, code.strip())):
        row.attempts += 1
        uow.commit()
        raise Unauthorized(WRONG_CODE)
    accounts = accounts_of(uow, phone_hmac)
    chosen = _choose(accounts, phone_hmac, role, scope)  # before the code is spent
    uow.session.delete(row)
    return open_session(config, chosen, accounts, phone_hmac)


def open_session(
    config: Settings, account: Account, accounts: list[Account], phone_hmac: str | None = None
) -> Session:
    token, claims = tokens.sign(
        config,
        subject=account.subject,
        role=account.role,
        scope=account.scope,
        ttl=tokens.session_ttl(config),
        phone_hash=phone_hmac if account.role == REGISTRANT else None,
    )
    return Session(token, claims, accounts)


def member_session(config: Settings, member_id: uuid.UUID) -> dict[str, object]:
    """A session for a member who has just registered themselves (their own, no code)."""
    own = Account(f"member:{member_id}", "member", f"member:{member_id}")
    return session_view(open_session(config, own, [own]))


def session_out(session: Session) -> SessionOut:
    """A session as ``POST /auth/sessions`` answers it."""
    return SessionOut.model_validate(session_view(session))


def session_view(session: Session) -> dict[str, object]:
    return {
        "token": session.token,
        "token_type": "Bearer",
        "role": session.claims.role,
        "scope": session.claims.scope,
        "expires_at": session.claims.expires_at.isoformat(),
        "accounts": [{"role": a.role, "scope": a.scope} for a in session.accounts],
    }


def _publish_revocation(
    uow: UnitOfWork, key: str, at: datetime, expires_at: datetime | None
) -> None:
    revoke(uow, key, at, expires_at)
    uow.emit(
        TokensRevoked(key=key, revoked_at=at, expires_at=expires_at),
        district=settings().district,
    )


def sign_out(uow: UnitOfWork, principal: Principal) -> None:
    """This token stops working here now, elsewhere when the event arrives."""
    _publish_revocation(uow, f"jti:{principal.token_id}", datetime.now(UTC), principal.expires_at)


def revoke_subject(uow: UnitOfWork, subject: str) -> None:
    """Every token of ``subject`` issued until now stops working (a disabled account, a
    withdrawn member), in every service once ``auth.revoked`` arrives."""
    _publish_revocation(uow, subject_key(subject), datetime.now(UTC), None)


def issue_operator_token(
    uow: UnitOfWork, config: Settings, role: str, scope: str, label: str | None, days: int
) -> str:
    """``servicemonth token create``: a signed token of longer life, listed until it expires."""
    token, claims = tokens.sign(
        config, subject="cli", role=role, scope=scope, ttl=timedelta(days=days)
    )
    uow.session.add(
        IssuedToken(
            jti=claims.jti,
            role=role,
            scope=scope,
            label=label,
            issued_at=claims.issued_at,
            expires_at=claims.expires_at,
        )
    )
    return token


def operator_tokens(uow: UnitOfWork) -> list[IssuedToken]:
    """The tokens made with the CLI that have not expired yet, newest first."""
    return list(
        uow.session.scalars(
            select(IssuedToken)
            .where(IssuedToken.expires_at > datetime.now(UTC))
            .order_by(IssuedToken.issued_at.desc())
        )
    )


def revoke_operator_token(uow: UnitOfWork, jti: str) -> IssuedToken | None:
    """Revoke a CLI token by its id (from ``token list``); None when there is no such token."""
    issued = uow.session.get(IssuedToken, jti)
    if issued is None:
        return None
    if issued.revoked_at is None:
        issued.revoked_at = datetime.now(UTC)
        _publish_revocation(uow, f"jti:{jti}", issued.revoked_at, issued.expires_at)
    return issued
