"""Registration's read side: every query a ``GET`` route answers with, on a read-only unit
of work (on SQLite it never takes the write lock, so reads go on while an import writes).

Each function checks what the caller may see the way the use cases do (out of scope reads
as absent, 404) and returns the API's models; a paged list comes with how many match.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session, selectinload

from services.registration import members, registrations, rosters, sessions, staff
from services.registration.models import (
    Community,
    CommunityRegistration,
    Division,
    Member,
    RosterError,
    StaffAccount,
    Unit,
)
from services.registration.schemas import (
    Category,
    Choice,
    CommunityOut,
    CommunityRegistrationOut,
    FiveOne,
    Line,
    MemberOut,
    OperatorTokenOut,
    RosterOut,
    StaffOut,
    UnitMemberOut,
    UnitOut,
    VocabularyOut,
)
from shared.auth import Principal
from shared.config import CAMPAIGN_TZ
from shared.db import UnitOfWork, messaging_stats
from shared.http import NotFound
from shared.runtime import Runtime
from shared.tabular import MAX_ERRORS
from shared.vocabulary import (
    AVAILABILITY,
    AVAILABILITY_LABELS,
    FIVE_ONES,
    PROJECT_KINDS,
    SENSITIVE_CATEGORIES,
    SKILL_SYNONYMS,
    SKILLS,
    TARGET_CATEGORIES,
)

#: A roster's rejected rows and notes shown in its JSON (errors.xlsx has all that are kept).
SHOWN_ERRORS = 1000


def _count(session: Session, query: Select[Any]) -> int:
    return session.scalar(select(func.count()).select_from(query.subquery())) or 0


# --- operators --------------------------------------------------------------------------------


def stats(uow: UnitOfWork) -> dict[str, int]:
    """What registration holds and has sent, for operators and the demo."""
    s = uow.session
    every = select(func.count()).select_from(CommunityRegistration)
    active = select(func.count()).select_from(Member).where(Member.state == "active")
    return {
        "members": s.scalar(active) or 0,
        "registrations": s.scalar(every) or 0,
        "registrations_confirmed": s.scalar(every.where(CommunityRegistration.state == "confirmed"))
        or 0,
        **messaging_stats(uow),
    }


# --- members and registrations ----------------------------------------------------------------


def member(rt: Runtime, principal: Principal, member_id: uuid.UUID) -> MemberOut:
    """A member, masked (the unmasked read is a command: it is audited)."""
    with rt.read() as uow:
        return members.member_out(members.visible_member(uow, member_id, principal))


def community_registrations(
    rt: Runtime, principal: Principal, community_code: str, state: str | None, limit: int
) -> tuple[int, list[CommunityRegistrationOut]]:
    """A community's registrations (in ``state`` when given), oldest first, each with its
    member's name, masked phone and unit; and how many match."""
    if not principal.covers(districts={community_code[:6]}, communities={community_code}):
        raise NotFound(f"no community {community_code}")
    query = select(CommunityRegistration).where(
        CommunityRegistration.community_code == community_code
    )
    if state:
        query = query.where(CommunityRegistration.state == state)
    with rt.read() as uow:
        total = _count(uow.session, query)
        rows = uow.session.execute(
            query.add_columns(Member.name, Member.phone_masked, Member.unit_code, Unit.name)
            .join(Member, Member.id == CommunityRegistration.member_id)
            .outerjoin(Unit, Unit.code == Member.unit_code)
            .order_by(CommunityRegistration.created_at, CommunityRegistration.id)
            .limit(limit)
        )
        return total, [
            CommunityRegistrationOut(
                **registrations.registration_out(r).model_dump(),
                member_id=str(r.member_id),
                name=name,
                phone=phone,
                unit_code=unit_code,
                unit_name=unit_name,
            )
            for r, name, phone, unit_code, unit_name in rows
        ]


def unit_members(
    rt: Runtime,
    principal: Principal,
    code: str,
    limit: int,
    offset: int,
    member_ids: list[uuid.UUID] | None,
) -> tuple[int, list[UnitMemberOut]]:
    """The unit's active members by name (only ``member_ids`` when given); how many match."""
    with rt.read() as uow:
        unit = uow.session.get(Unit, code)
        if unit is None or not principal.covers(districts={unit.district_code}, units={code}):
            raise NotFound(f"no unit {code}")  # out of scope looks like absent
        query = select(Member).where(Member.unit_code == code, Member.state == "active")
        if member_ids:
            query = query.where(Member.id.in_(member_ids))
        total = _count(uow.session, query)
        found = uow.session.scalars(
            query.options(selectinload(Member.registrations))
            .order_by(Member.name, Member.id)
            .limit(limit)
            .offset(offset)
        )
        return total, [UnitMemberOut.model_validate(m) for m in found]


# --- the directory ----------------------------------------------------------------------------


def _is_open(valid_from: date | None, valid_to: date | None, today: date) -> bool:
    return (valid_from is None or valid_from <= today) and (valid_to is None or today <= valid_to)


def _names(session: Session, codes: set[str]) -> dict[str, str]:
    rows = session.execute(select(Division.code, Division.name).where(Division.code.in_(codes)))
    return {code: name for code, name in rows}


def _community_out(c: Community, districts: dict[str, str], today: date) -> CommunityOut:
    return CommunityOut(
        code=c.code,
        name=c.name,
        district_code=c.district_code,
        district_name=districts.get(c.district_code),
        street_name=districts.get(c.code[:9]),
        phone=c.phone,
        open=_is_open(c.valid_from, c.valid_to, today),
    )


def _today(rt: Runtime) -> date:
    return rt.clock.now().astimezone(CAMPAIGN_TZ).date()


def _like(words: str) -> str:
    escaped = words.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _open_matching(
    model: type[Community] | type[Unit], q: str, district: str | None, limit: int, today: date
) -> Select[Any]:
    """Open rows of ``model`` whose name or code contains ``q`` (all when empty), by code."""
    query = (
        select(model)
        .where(or_(model.valid_from.is_(None), model.valid_from <= today))
        .where(or_(model.valid_to.is_(None), model.valid_to >= today))
        .order_by(model.code)
        .limit(limit)
    )
    if q.strip():
        like = _like(q.strip())
        query = query.where(
            or_(model.name.like(like, escape="\\"), model.code.like(like, escape="\\"))
        )
    if district:
        query = query.where(model.district_code == district)
    return query


def communities(rt: Runtime, q: str, district: str | None, limit: int) -> list[CommunityOut]:
    """Open communities whose name or code contains ``q`` (all when empty), by code."""
    today = _today(rt)
    with rt.read() as uow:
        found = list(uow.session.scalars(_open_matching(Community, q, district, limit, today)))
        names = _names(uow.session, {c.district_code for c in found} | {c.code[:9] for c in found})
        return [_community_out(c, names, today) for c in found]


def community(rt: Runtime, code: str) -> CommunityOut:
    """One community by its code, open or closed."""
    with rt.read() as uow:
        found = uow.session.get(Community, code)
        if found is None:
            raise NotFound(f"no community {code}")
        names = _names(uow.session, {found.district_code, found.code[:9]})
        return _community_out(found, names, _today(rt))


def units(rt: Runtime, q: str, district: str | None, limit: int) -> list[UnitOut]:
    """Open units whose name or code contains ``q``, by code."""
    with rt.read() as uow:
        found = uow.session.scalars(_open_matching(Unit, q, district, limit, _today(rt)))
        return [
            UnitOut(
                code=u.code,
                name=u.name,
                level=u.level,
                district_code=u.district_code,
                community_code=u.community_code,
            )
            for u in found
        ]


def vocabulary() -> VocabularyOut:
    """The vocabularies forms offer (public configuration, no query)."""
    return VocabularyOut(
        skills=list(SKILLS),
        availability=[Choice(value=a, label=AVAILABILITY_LABELS[a]) for a in AVAILABILITY],
        five_ones=[FiveOne(kind=kind, label=label) for kind, label in FIVE_ONES.items()],
        synonyms={word: list(terms) for word, terms in SKILL_SYNONYMS.items()},
        target_categories=[
            Category(value=c, sensitive=c in SENSITIVE_CATEGORIES) for c in TARGET_CATEGORIES
        ],
        project_kinds=list(PROJECT_KINDS),
    )


# --- rosters ----------------------------------------------------------------------------------


def roster(rt: Runtime, principal: Principal, roster_id: uuid.UUID) -> RosterOut:
    """Where an import stands: counts, the first rejected rows and notes on landed rows."""
    with rt.read() as uow:
        found = rosters.visible_roster(uow, roster_id, principal)
        count = select(func.count()).where(RosterError.roster_id == roster_id)
        errors = rosters.errors_of(uow.session, roster_id, SHOWN_ERRORS)
        notes = rosters.notes_of(uow.session, roster_id, SHOWN_ERRORS)
        return RosterOut(
            id=str(found.id),
            unit_code=found.unit_code,
            filename=found.filename,
            status=found.status,
            total=found.total,
            accepted=found.accepted,
            rejected=found.rejected,
            duplicates=found.duplicates,
            detail=found.detail,
            created_at=found.created_at.isoformat(),
            finished_at=found.finished_at.isoformat() if found.finished_at else None,
            error_count=uow.session.scalar(count) or 0,
            # Every rejected row is counted; the first MAX_ERRORS are kept with reasons.
            errors_total=found.rejected,
            errors_kept=min(found.rejected, MAX_ERRORS),
            errors=[Line.model_validate(e) for e in errors],
            # Landed rows with a note, counted and kept the same way.
            notes_total=found.noted,
            notes_kept=min(found.noted, MAX_ERRORS),
            notes=[Line.model_validate(n) for n in notes],
        )


# --- staff accounts ---------------------------------------------------------------------------


def staff_accounts(
    rt: Runtime,
    principal: Principal,
    *,
    role: str | None,
    scope: str | None,
    state: str | None,
    limit: int,
    offset: int,
) -> tuple[int, list[StaffOut]]:
    """Staff accounts in the caller's sight (masked), by scope and role; how many match."""
    query = select(StaffAccount)
    if principal.role != "admin":
        query = query.where(StaffAccount.district_code == principal.code)
    if role is not None:
        query = query.where(StaffAccount.role == role)
    if scope is not None:
        query = query.where(StaffAccount.scope == scope)
    if state is not None:
        query = query.where(StaffAccount.state == state)
    with rt.read() as uow:
        total = _count(uow.session, query)
        found = uow.session.scalars(
            query.order_by(StaffAccount.scope, StaffAccount.role, StaffAccount.id)
            .limit(limit)
            .offset(offset)
        )
        return total, [staff.view(a, rt.sealer) for a in found]


def staff_account(rt: Runtime, principal: Principal, account_id: uuid.UUID) -> StaffOut:
    with rt.read() as uow:
        return staff.view(staff.visible_account(uow, account_id, principal), rt.sealer)


def operator_tokens(rt: Runtime) -> list[OperatorTokenOut]:
    """``servicemonth token list``: the tokens made with the CLI that have not expired."""
    with rt.read() as uow:
        return [OperatorTokenOut.model_validate(t) for t in sessions.operator_tokens(uow)]
