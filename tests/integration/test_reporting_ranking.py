"""The live ranking a leader's overview shows (``GET /summary/ranking``) and the masked
names pages put next to member ids (``GET /summary/members``), on both backends, after a
half month driven through the real APIs: every ranked row is that scope's own summary, in
the reports' order (best first, ties by code), the laggards are those under the threshold,
and nobody reads outside their scope."""

from __future__ import annotations

from typing import Any

from shared.clock import SimulatedClock
from tests.integration.reporting_support import (  # noqa: F401 (admin, clock: fixtures)
    admin,
    clock,
    deliver_to_reporting,
    drive_month,
)
from tests.support import client, issue_token


def order(row: dict[str, Any]) -> tuple[bool, float, str]:
    return (row["value"] is None, -(row["value"] or 0), row["scope"])


def test_sub_scopes_are_ranked_live_with_their_laggards_and_members_named_masked(
    backend: Any, admin: Any, clock: SimulatedClock
) -> None:
    month = drive_month(backend, admin, clock)
    deliver_to_reporting(backend)

    cases = (
        ("city", {}, "district"),
        ("district:410303", {}, "community"),
        ("district:410303", {"level": "unit", "by": "dual_pairing_rate"}, "unit"),
    )
    with client(issue_token(backend, "leader", "district:410303")) as leader:
        for scope, params, level in cases:
            http = admin if scope == "city" else leader
            answer = http.get("/api/v1/summary/ranking", params={"scope": scope, **params})
            assert answer.status_code == 200, answer.text
            body = answer.json()
            by = params.get("by", "five_ones_rate")
            assert (body["scope"], body["level"], body["by"]) == (scope, level, by)
            rows = body["ranked"]
            assert rows and all(r["scope"].startswith(level + ":") for r in rows)
            assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
            assert rows == sorted(rows, key=order)
            for row in rows:
                own = http.get("/api/v1/summary", params={"scope": row["scope"]}).json()
                assert {k: row[k] for k in own} == own
                assert row["value"] == own["rates"][by]
                assert row["laggard"] is (row["value"] < body["threshold"])
            assert body["laggards"] == [r["scope"] for r in rows if r["laggard"]]
        assert any(r["value"] for r in rows)  # pairing has happened: not every tie

        own = leader.get("/api/v1/summary/ranking").json()  # the caller's own scope
        assert own["scope"] == "district:410303" and own["level"] == "community"
        refused = leader.get("/api/v1/summary/ranking", params={"scope": "district:410305"})
        assert refused.status_code == 404
        assert leader.get("/api/v1/summary/ranking", params={"scope": "city"}).status_code == 404
        bad = leader.get("/api/v1/summary/ranking", params={"scope": "street:1"})
        assert bad.status_code == 422

    unit = "U410303001"
    ids = {m for m, body in month.members.items() if body["unit_code"] == unit}
    with client(issue_token(backend, "unit", f"unit:{unit}")) as organiser:
        named = organiser.get("/api/v1/summary/members")
        assert named.status_code == 200, named.text
        rows = named.json()
        assert {r["member_id"] for r in rows} == ids
        assert named.headers["X-Total-Count"] == str(len(ids))
        assert all("*" in r["name"] and r["unit_code"] == unit for r in rows)
        summary = organiser.get("/api/v1/summary").json()
        assert summary["members"] == len(ids)
        picked = sorted(ids)[:2]
        some = organiser.get("/api/v1/summary/members", params={"member_id": picked}).json()
        assert [r["member_id"] for r in some] == picked
        elsewhere = organiser.get("/api/v1/summary/members", params={"scope": "unit:U410305001"})
        assert elsewhere.status_code == 404
        assert organiser.get("/api/v1/summary/ranking").json()["ranked"] == []
