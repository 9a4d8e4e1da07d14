"""Reporting's projections on both backends: a month driven through the real APIs (the
driver in ``reporting_support``), figures of a closed period that do not move,
scopes by the caller's token. The independent oracle — every figure equal to what
registration's and pairing's own tables say, live and as of an instant — is in
``test_reporting_oracle``."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from services.reporting import figures as fig
from shared.clock import SimulatedClock
from tests.integration.reporting_support import (  # noqa: F401 (admin, clock: fixtures)
    SCOPES,
    admin,
    clock,
    confirm,
    deliver_to_pairing,
    deliver_to_reporting,
    drive_month,
    serve,
)
from tests.support import client, issue_token


def test_a_closed_period_gives_the_same_figures_and_ranks_after_more_events(
    backend: Any, admin: Any, clock: SimulatedClock
) -> None:
    month = drive_month(backend, admin, clock)
    deliver_to_reporting(backend)
    end = clock.now()
    rt = backend.rt("reporting")
    with rt.uow() as uow:
        levels = fig.children(uow, "city")
        before = fig.figures_many(uow, SCOPES, end)
        ranks = fig.ranking(uow, levels, end)
    assert levels[:2] == ["district:410303", "district:410305"]
    assert "unit:U410300001" in levels and "unit:U410303001" not in levels
    clock.advance(timedelta(hours=1))
    confirm(month, 1.0)  # the rest report in, and the month goes on
    deliver_to_pairing(month)
    serve(month, 1)
    deliver_to_reporting(backend)
    with rt.uow() as uow:
        assert fig.figures_many(uow, SCOPES, end) == before
        again = fig.ranking(uow, levels, end)
        now = fig.figures(uow, "city")
    assert [(n, f.scope) for n, f in again] == [(n, f.scope) for n, f in ranks]
    assert again == ranks
    assert now != before["city"]
    codes = [f.code for _, f in ranks]
    values = [f.dual_pairing_rate for _, f in ranks]
    for i in range(len(ranks) - 1):  # best first; equal rates ordered by code
        assert values[i] > values[i + 1] or (values[i] == values[i + 1] and codes[i] < codes[i + 1])


def test_the_summary_is_scoped_by_the_callers_token(backend: Any, admin: Any) -> None:
    with client(issue_token(backend, "leader", "district:410303")) as leader:
        assert leader.get("/api/v1/summary", params={"scope": "city"}).status_code == 404
        assert leader.get("/api/v1/summary", params={"scope": "district:410305"}).status_code == 404
        own = leader.get("/api/v1/summary")
        assert own.status_code == 200 and own.json()["scope"] == "district:410303"
        assert (
            leader.get("/api/v1/summary", params={"scope": "community:410303001001"}).status_code
            == 200
        )
        assert leader.get("/api/v1/summary", params={"scope": "unit:bad code"}).status_code == 422
    with client(issue_token(backend, "community", "community:410303001001")) as staff:
        assert staff.get("/api/v1/summary").json()["scope"] == "community:410303001001"
        assert (
            staff.get("/api/v1/summary", params={"scope": "community:410303002001"}).status_code
            == 404
        )
    with client(issue_token(backend, "member", f"member:{uuid.uuid4()}")) as member:
        assert member.get("/api/v1/summary").status_code == 403
    with client() as nobody:
        assert nobody.get("/api/v1/summary").status_code == 401
