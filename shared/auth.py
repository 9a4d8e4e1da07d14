"""Bearer tokens, roles and scopes — who may see and do what.

A token is signed by registration (:mod:`shared.tokens`) when someone signs in with an SMS
code, or by ``servicemonth token create``; each service checks the signature with the public
key and looks in its own ``revoked_tokens`` table (kept current by ``auth.revoked`` events),
never writing. Each request's principal has a role and a scope:

| role | scope | may |
|---|---|---|
| admin | ``city`` | everything, everywhere |
| operator | ``district:410303`` | run the district: members, rosters, directory |
| unit | ``unit:CODE`` | its own members and rosters |
| community | ``community:CODE`` | its own registrations, needs, wishes |
| member | ``member:UUID`` | their own data |
| leader | any of city/district/unit/community | read figures, nothing else |
| registrant | ``phone:HASH`` | register the member with that verified phone, nothing else |

Something outside the caller's scope answers 404, as if it did not exist.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Select, Table, and_, delete, insert, or_, select, update

from shared import tokens
from shared.db import UnitOfWork
from shared.events import Envelope, TokensRevoked
from shared.http import DomainError
from shared.runtime import Runtime
from shared.tokens import Claims

ROLES = ("admin", "operator", "unit", "community", "member", "leader")
#: A signed-in phone with no account yet: it may only register itself (``POST /members``).
REGISTRANT = "registrant"
#: The OpenAPI security scheme of every route that takes a token.
BEARER = HTTPBearer(auto_error=False, bearerFormat="JWT", description="a signed session token")
_SCOPE = re.compile(
    r"^(city|district:\d{6}|unit:[\w-]{1,40}|community:\d{12}|member:[0-9a-f-]{36})$"
)
_ROLE_SCOPES = {
    "admin": ("city",),
    "operator": ("district",),
    "unit": ("unit",),
    "community": ("community",),
    "member": ("member",),
    "leader": ("city", "district", "unit", "community"),
}


class Unauthorized(DomainError):
    status = 401
    title = "Unauthorized"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.headers["WWW-Authenticate"] = "Bearer"


class Forbidden(DomainError):
    status = 403
    title = "Forbidden"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a role limited to a scope."""

    role: str
    scope: str
    token_id: str = ""  # the token's jti (audit rows name it)
    subject: str = ""
    phone_hash: str | None = None  # a registrant's verified phone (keyed hash)
    expires_at: datetime | None = None

    @property
    def kind(self) -> str:
        return self.scope.split(":", 1)[0]

    @property
    def code(self) -> str:
        return self.scope.split(":", 1)[1] if ":" in self.scope else ""

    def covers(
        self,
        *,
        districts: Iterable[str] = (),
        units: Iterable[str] = (),
        communities: Iterable[str] = (),
        member: str | None = None,
    ) -> bool:
        """True when something in those districts/units/communities (or that member) is
        inside this principal's scope."""
        if self.kind == "city":
            return True
        if self.kind == "district":
            return self.code in set(districts)
        if self.kind == "unit":
            return self.code in set(units)
        if self.kind == "community":
            return self.code in set(communities)
        if self.kind == "member":
            return member is not None and self.code == member
        return False


def check_role_scope(role: str, scope: str) -> None:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r} (one of: {', '.join(ROLES)})")
    if not _SCOPE.match(scope):
        raise ValueError(
            f"bad scope {scope!r} (city, district:CODE, unit:CODE, community:CODE, member:ID)"
        )
    if scope.split(":", 1)[0] not in _ROLE_SCOPES[role]:
        allowed = ", ".join(_ROLE_SCOPES[role])
        raise ValueError(f"a {role} token takes a scope of kind: {allowed}")


def subject_key(subject: str) -> str:
    """The revocation key of every token of ``subject``: a hash, so the table of an erased
    member keeps no trace of their id."""
    return "sub:" + hashlib.sha256(subject.encode()).hexdigest()


def _revoked(table: Table, claims: Claims) -> Select[tuple[str]]:
    """The revocations that hit a token: its own id, or its subject revoked at or after the
    token was issued (a sign-in after a revocation is a new, valid session)."""
    return select(table.c.key).where(
        or_(
            table.c.key == f"jti:{claims.jti}",
            and_(
                table.c.key == subject_key(claims.subject),
                table.c.revoked_at >= claims.issued_at,
            ),
        )
    )


def revoke(
    uow: UnitOfWork, key: str, revoked_at: datetime, expires_at: datetime | None = None
) -> None:
    """Record a revocation (``jti:ID`` or :func:`subject_key`) in this service's database; a
    later revocation of the same subject moves its instant forward. Idempotent. Revocations
    of tokens that have expired anyway are dropped on the way (the table stays small)."""
    table = uow.db.metadata.tables["revoked_tokens"]
    uow.session.execute(delete(table).where(table.c.expires_at < datetime.now(UTC)))
    row = uow.session.execute(select(table.c.revoked_at).where(table.c.key == key)).first()
    if row is None:
        uow.session.execute(
            insert(table).values(key=key, revoked_at=revoked_at, expires_at=expires_at)
        )
    elif row.revoked_at < revoked_at:
        uow.session.execute(update(table).where(table.c.key == key).values(revoked_at=revoked_at))


def apply_revocation(event: TokensRevoked, envelope: Envelope, uow: UnitOfWork) -> None:
    """The handler of ``auth.revoked`` in every consuming service: from now on this service
    refuses those tokens too."""
    revoke(uow, event.key, event.revoked_at, event.expires_at)


def revoke_member_tokens(uow: UnitOfWork, member_id: uuid.UUID) -> None:
    """A withdrawn member's sessions stop working (every service does this on withdrawal)."""
    revoke(uow, subject_key(f"member:{member_id}"), datetime.now(UTC))


def principal_from(runtime: Runtime, token: str | None) -> Principal:
    """Check a bearer token with the public key and this service's revocations. Reads only:
    on SQLite it never takes the write lock."""
    if not token:
        raise Unauthorized("send 'Authorization: Bearer <token>'")
    try:
        claims = tokens.verify(runtime.settings, token)
    except tokens.InvalidToken as exc:
        raise Unauthorized(str(exc)) from None
    if claims.role not in ROLES and claims.role != REGISTRANT:
        raise Unauthorized("not a valid token")
    with runtime.db.reader() as session:
        if session.execute(_revoked(runtime.db.metadata.tables["revoked_tokens"], claims)).first():
            raise Unauthorized("this session has ended; sign in again")
    return Principal(
        role=claims.role,
        scope=claims.scope,
        token_id=claims.jti,
        subject=claims.subject,
        phone_hash=claims.phone_hash,
        expires_at=claims.expires_at,
    )


def requires(runtime: Callable[[], Runtime], *roles: str) -> Callable[..., Principal]:
    """A FastAPI dependency: the caller's principal, refused unless it has one of ``roles``
    (any role of :data:`ROLES` when none is named; a registrant only where named)."""

    def dependency(
        rt: Runtime = Depends(runtime),
        credentials: HTTPAuthorizationCredentials | None = Depends(BEARER),
    ) -> Principal:
        principal = principal_from(rt, credentials.credentials if credentials else None)
        allowed = roles or ROLES
        if principal.role not in allowed:
            raise Forbidden(f"a {principal.role} token may not do this")
        return principal

    return dependency


Stats = Callable[[UnitOfWork], dict[str, int]]


def add_status_route(
    router: APIRouter, service: str, runtime: Callable[[], Runtime], stats: Stats
) -> None:
    """``GET /api/v1/ops/<service>`` for operators: what the service holds, sent, applied."""
    guard = requires(runtime, "admin", "operator")

    def status(
        response: Response, rt: Runtime = Depends(runtime), _who: Principal = Depends(guard)
    ) -> dict[str, int]:
        response.headers["Cache-Control"] = "no-store"
        with rt.read() as uow:
            return stats(uow)

    router.add_api_route(
        f"/ops/{service}", status, methods=["GET"], tags=["ops"], summary=f"{service} counts"
    )
