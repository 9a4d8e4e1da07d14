"""A unit's members and their five ones (``GET /units/{code}/progress``), on both backends:
each row equals the member's own progress, paging and the "behind" filter add up, and each
role sees only its scope."""

from __future__ import annotations

from typing import Any

from tests.integration.test_five_ones import (  # noqa: F401 (admin: a fixture)
    HOME,
    KINDS,
    admin,
    enrol,
    from_records,
    record,
)
from tests.support import client, issue_token

UNIT = "U410305001"  # enrol() registers its members there, living in HOME
ROUTE = f"/api/v1/units/{UNIT}/progress"


def test_a_units_members_progress_pages_and_filters_within_each_scope(
    backend: Any, admin: Any
) -> None:
    done, behind, cadre = enrol(backend, admin, [700, 701]) + enrol(
        backend, admin, [703], cadre=True
    )
    for hour, kind in enumerate(KINDS):
        made = record(
            admin, done, kind, start_time=f"{8 + hour:02d}:00", end_time=f"{9 + hour:02d}:00"
        )
        assert made.status_code == 201, made.text
        assert admin.post(f"/api/v1/activities/{made.json()['id']}/verify").status_code == 200
    visit = record(admin, behind, "home_visit", hours=2)
    assert admin.post(f"/api/v1/activities/{visit.json()['id']}/verify").status_code == 200

    with client(issue_token(backend, "unit", f"unit:{UNIT}")) as unit:
        everyone = unit.get(ROUTE)
        assert everyone.status_code == 200, everyone.text
        assert everyone.headers["X-Total-Count"] == "3"
        rows = everyone.json()
        assert [r["member_id"] for r in rows] == sorted([done, behind, cadre])
        for row in rows:
            own = from_records(backend, row["member_id"])
            assert {k: row[k] for k in own} == own  # the member's own progress, no copy
            assert row["reported_in"] is True
            assert row["is_leader_cadre"] is (row["member_id"] == cadre)
        assert next(r for r in rows if r["member_id"] == done)["complete"] is True
        assert next(r for r in rows if r["member_id"] == behind)["hours"] == 2

        late = unit.get(ROUTE, params={"complete": "false"})
        assert late.headers["X-Total-Count"] == "2"
        assert {r["member_id"] for r in late.json()} == {behind, cadre}
        first = unit.get(ROUTE, params={"limit": 2}).json()
        rest = unit.get(ROUTE, params={"limit": 2, "offset": 2}).json()
        assert first + rest == rows
        assert unit.get("/api/v1/units/U410303001/progress").status_code == 404

    # an operator or a leader sees the members registered in their scope
    for role, scope, seen in (
        ("operator", "district:410303", 3),
        ("leader", f"unit:{UNIT}", 3),
        ("leader", "community:410305001001", 3),  # the unit's own community (双注册)
        ("leader", "community:410303002001", 0),
        ("operator", "district:410302", 0),
    ):
        with client(issue_token(backend, role, scope)) as http:
            answer = http.get(ROUTE)
            assert answer.status_code == 200, (role, scope, answer.text)
            assert answer.headers["X-Total-Count"] == str(seen), (role, scope)
    for role, scope in (("member", f"member:{done}"), ("community", f"community:{HOME}")):
        with client(issue_token(backend, role, scope)) as http:
            assert http.get(ROUTE).status_code == 403
