"""Who may read which scope's figures: the scopes reporting keeps figures for, where a scope
lies, and whether a caller's token covers it. Used by the views, subscriptions and report
downloads alike (anything outside the caller's scope answers 404, as if it did not exist).
Notify reads report files with the report-files token (:func:`report_files_reader`)."""

from __future__ import annotations

import hmac

from services.reporting.models import Place
from shared.auth import Principal, check_role_scope
from shared.config import CITY, Settings
from shared.db import UnitOfWork
from shared.http import Invalid


def check_scope(scope: str) -> None:
    """A scope figures are kept for: the ones a leader's token may take (shared.auth)."""
    try:
        check_role_scope("leader", scope)
    except ValueError:
        raise Invalid(
            "unknown scope",
            [{"field": "scope", "message": "use city, district:CODE, unit:CODE or community:CODE"}],
        ) from None


def district_of(uow: UnitOfWork, scope: str) -> str | None:
    """The district a unit or community scope lies in (a city-level unit: none)."""
    kind, _, code = scope.partition(":")
    if kind == "district":
        return code
    if kind == "community":
        return code[:6]
    place = uow.session.get(Place, scope)
    return place.district if place is not None and place.district != CITY else None


def visible(uow: UnitOfWork, principal: Principal, scope: str) -> bool:
    """May ``principal`` read ``scope``'s figures? The city sees all; a district its
    communities and county-level units; a unit or a community only itself
    (:meth:`shared.auth.Principal.covers`, given where ``scope`` lies)."""
    if scope == "city":
        return principal.kind == "city"
    kind, _, code = scope.partition(":")
    district = district_of(uow, scope)
    return principal.covers(
        districts=[district] if district else [],
        units=[code] if kind == "unit" else [],
        communities=[code] if kind == "community" else [],
    )


#: Notify reading a report's files to e-mail them: every report of this deployment, and
#: nothing else (only the file download takes it); downloads record it under this name.
NOTIFY_READER = Principal(role="notify", scope="city", token_id="report-files-token")


def report_files_reader(settings: Settings, bearer: str | None) -> Principal | None:
    """:data:`NOTIFY_READER` when ``bearer`` is the report-files token (compared in
    constant time), else None: the caller is checked as a person's token."""
    if not bearer:
        return None
    expected = settings.report_files_token().encode()
    return NOTIFY_READER if hmac.compare_digest(expected, bearer.encode()) else None
