"""Bearer tokens, roles and scopes — who may see and do what.

A token is a random secret shown once; every service database keeps only its SHA-256 (the
``access_tokens`` table of :mod:`shared.db`), written there by ``servicemonth token create``.
Each request's principal has a role and a scope:

| role | scope | may |
|---|---|---|
| admin | ``city`` | everything, everywhere |
| operator | ``district:410303`` | run the district: members, rosters, directory |
| unit | ``unit:CODE`` | its own members and rosters |
| community | ``community:CODE`` | its own registrations, needs, wishes |
| member | ``member:UUID`` | their own data |
| leader | any of city/district/unit/community | read figures, nothing else |

Something outside the caller's scope answers 404, as if it did not exist.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Header, Response
from sqlalchemy import delete, insert, select

from shared.db import UnitOfWork
from shared.http import DomainError
from shared.runtime import Runtime

ROLES = ("admin", "operator", "unit", "community", "member", "leader")
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


class Forbidden(DomainError):
    status = 403
    title = "Forbidden"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a role limited to a scope."""

    role: str
    scope: str
    token_id: int = 0

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


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "smt_" + secrets.token_urlsafe(32)


def store_token(runtime: Runtime, token: str, role: str, scope: str, label: str | None) -> None:
    """Record ``token`` (hashed) in one service's database."""
    table = runtime.db.metadata.tables["access_tokens"]
    with runtime.db.session() as session:
        session.execute(
            insert(table).values(
                token_hash=hash_token(token),
                role=role,
                scope=scope,
                label=label,
                created_at=datetime.now(UTC),
            )
        )
        session.commit()


def revoke_member_tokens(uow: UnitOfWork, member_id: uuid.UUID) -> None:
    """A withdrawn member's own tokens stop working (every service does this on withdrawal)."""
    table = uow.db.metadata.tables["access_tokens"]
    uow.session.execute(delete(table).where(table.c.scope == f"member:{member_id}"))


def principal_from(runtime: Runtime, authorization: str | None) -> Principal:
    if not authorization or not authorization.lower().startswith("bearer "):
        raise Unauthorized("send 'Authorization: Bearer <token>'")
    token = authorization.split(" ", 1)[1].strip()
    table = runtime.db.metadata.tables["access_tokens"]
    with runtime.db.session() as session:
        row = session.execute(
            select(table.c.id, table.c.role, table.c.scope).where(
                table.c.token_hash == hash_token(token)
            )
        ).first()
    if row is None:
        raise Unauthorized("unknown token")
    return Principal(role=row.role, scope=row.scope, token_id=row.id)


def requires(runtime: Callable[[], Runtime], *roles: str) -> Callable[..., Principal]:
    """A FastAPI dependency: the caller's principal, refused unless it has one of ``roles``."""

    def dependency(
        rt: Runtime = Depends(runtime),
        authorization: str | None = Header(default=None),
    ) -> Principal:
        principal = principal_from(rt, authorization)
        if roles and principal.role not in roles:
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
        with rt.uow() as uow:
            return stats(uow)

    router.add_api_route(
        f"/ops/{service}", status, methods=["GET"], tags=["ops"], summary=f"{service} counts"
    )
