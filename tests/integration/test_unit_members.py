"""A unit's members for its organiser, on both backends: full names, masked phones, the
registrations' states, paging, and who may ask (another unit's organiser: 404)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.support import client, issue_token, load_sample_directory, member_body

UNIT = "U410303001"  # district 410303
OTHER_UNIT = "U410305001"  # district 410305
PATH = f"/api/v1/directory/units/{UNIT}/members"


@pytest.fixture
def registered(backend: Any) -> dict[str, Any]:
    """Three members of UNIT (one a leading cadre, one withdrawn) and one of OTHER_UNIT."""
    load_sample_directory(backend)
    admin = issue_token(backend, "admin", "city")
    made: dict[str, Any] = {"ours": [], "withdrawn": None, "theirs": None}
    with client(admin) as http:
        seed = 9100
        for n, unit in enumerate([UNIT, UNIT, UNIT, OTHER_UNIT]):
            while True:  # a synthetic ID number may repeat: take the next seed
                seed += 1
                body = member_body(seed, unit_code=unit, is_leader_cadre=n == 0, consent=True)
                answer = http.post("/api/v1/members", json=body)
                if answer.status_code == 201:
                    break
                assert answer.status_code == 409, answer.text
            member = answer.json() | {"full_name": body["name"], "raw_phone": body["phone"]}
            if unit == OTHER_UNIT:
                made["theirs"] = member
            elif n == 2:
                assert http.delete(f"/api/v1/members/{member['id']}").status_code == 200
                made["withdrawn"] = member
            else:
                made["ours"].append(member)
    return made


def test_the_organiser_sees_full_names_masked_phones_and_states(
    backend: Any, registered: dict[str, Any]
) -> None:
    with client(issue_token(backend, "unit", f"unit:{UNIT}")) as http:
        answer = http.get(PATH)
    assert answer.status_code == 200, answer.text
    assert answer.headers["X-Total-Count"] == "2"  # the withdrawn member is not listed
    rows = answer.json()
    ours = {m["id"]: m for m in registered["ours"]}
    assert {r["id"] for r in rows} == set(ours)
    assert [r["name"] for r in rows] == sorted(r["name"] for r in rows)  # by name
    for row in rows:
        member = ours[row["id"]]
        assert row["name"] == member["full_name"]  # in full: the organiser manages them
        assert row["phone"] == member["phone"]  # masked, as member_view shows it
        assert re.fullmatch(r"1\d\d\*{4}\d{4}", row["phone"])
        assert member["raw_phone"] not in answer.text
        assert row["is_leader_cadre"] == (member["id"] == registered["ours"][0]["id"])
        assert row["registrations"] and {r["state"] for r in row["registrations"]} == {"submitted"}
        assert {r["community_code"] for r in row["registrations"]} == {
            r["community_code"] for r in member["registrations"]
        }
    assert "id_number" not in rows[0]


def test_paging_and_picking_members(backend: Any, registered: dict[str, Any]) -> None:
    with client(issue_token(backend, "admin", "city")) as http:
        first = http.get(PATH, params={"limit": 1})
        second = http.get(PATH, params={"limit": 1, "offset": 1})
        picked = http.get(PATH, params={"member_id": registered["ours"][1]["id"]})
        assert http.get(PATH, params={"limit": 1001}).status_code == 422
        assert http.get(PATH, params={"offset": -1}).status_code == 422
    assert first.headers["X-Total-Count"] == second.headers["X-Total-Count"] == "2"
    assert len(first.json()) == len(second.json()) == 1
    assert first.json()[0]["id"] != second.json()[0]["id"]
    assert [m["id"] for m in picked.json()] == [registered["ours"][1]["id"]]
    assert picked.headers["X-Total-Count"] == "1"


@pytest.mark.parametrize(
    ("role", "scope", "status"),
    [
        ("admin", "city", 200),
        ("operator", "district:410303", 200),
        ("operator", "district:410305", 404),  # not its district
        ("unit", f"unit:{UNIT}", 200),
        ("unit", f"unit:{OTHER_UNIT}", 404),  # another unit's members look absent
        ("community", "community:410303001002", 403),
        ("leader", "district:410303", 403),
    ],
)
def test_who_may_read_a_units_members(
    backend: Any, registered: dict[str, Any], role: str, scope: str, status: int
) -> None:
    with client(issue_token(backend, role, scope)) as http:
        answer = http.get(PATH)
        assert answer.status_code == status, answer.text
        if status == 200:
            names = {m["name"] for m in answer.json()}
            assert registered["theirs"]["full_name"] not in names
        assert http.get("/api/v1/directory/units/U999/members").status_code in (403, 404)


def test_no_token_no_members(backend: Any, registered: dict[str, Any]) -> None:
    with client() as http:
        assert http.get(PATH).status_code == 401
