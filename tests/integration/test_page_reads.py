"""The reads the pages are built on: the directory for forms and QR links (any signed-in
caller, a registrant's too), and service records listed for their member or their
community's staff — nobody else."""

from __future__ import annotations

from typing import Any

from tests.integration.test_five_ones import HOME, admin, enrol, record  # noqa: F401 (fixture)
from tests.support import client, issue_token, load_sample_directory


def test_directory_reads_answer_any_signed_in_caller_and_no_stranger(backend: Any) -> None:
    load_sample_directory(backend)
    with client() as stranger:
        # a community's name is on its poster: anyone may read it; searching needs a token
        assert stranger.get("/api/v1/directory/communities/410303001001").status_code == 200
        assert stranger.get("/api/v1/directory/communities").status_code == 401
        assert stranger.get("/api/v1/directory/units").status_code == 401
    with client(issue_token(backend, "registrant", "phone:test")) as registrant:
        one = registrant.get("/api/v1/directory/communities/410303001001")
        assert one.status_code == 200
        assert one.json() == {
            "code": "410303001001",
            "name": "王城社区",
            "district_code": "410303",
            "district_name": "西工区",
            "street_name": "王城路街道",
            "phone": "0379-63921001",
            "open": True,
        }
        assert registrant.get("/api/v1/directory/communities/410303009999").status_code == 404
        found = registrant.get("/api/v1/directory/communities", params={"q": "王城"}).json()
        assert [c["code"] for c in found] == ["410303001001"]
        # a LIKE wildcard typed by someone is a character, not "anything"
        assert registrant.get("/api/v1/directory/communities", params={"q": "%"}).json() == []
        units = registrant.get("/api/v1/directory/units", params={"q": "西工区"}).json()
        assert [(u["code"], u["community_code"]) for u in units] == [("U410303001", "410303001002")]
        district = registrant.get("/api/v1/directory/units", params={"district": "410305"})
        assert [u["code"] for u in district.json()] == ["U410305001"]
        too_long = registrant.get("/api/v1/directory/units", params={"q": "字" * 41})
        assert too_long.status_code == 422


def test_records_list_for_their_member_and_their_community_staff_only(
    backend: Any,
    admin: Any,
) -> None:
    first, second = enrol(backend, admin, [301, 302])
    assert record(admin, first, "home_visit", hours=2).status_code == 201
    assert record(admin, first, "policy_talk", hours=1, date="2016-07-05").status_code == 201
    assert record(admin, second, "home_visit", hours=3).status_code == 201

    with client(issue_token(backend, "member", f"member:{first}")) as member:
        mine = member.get("/api/v1/activities")
        assert mine.status_code == 200 and mine.headers["x-total-count"] == "2"
        assert [(r["kind"], r["date"]) for r in mine.json()] == [
            ("policy_talk", "2016-07-05"),
            ("home_visit", "2016-07-02"),
        ]
        assert member.get("/api/v1/activities", params={"member_id": second}).status_code == 403

    with client(issue_token(backend, "community", f"community:{HOME}")) as staff:
        waiting = staff.get(
            "/api/v1/activities", params={"community_code": HOME, "state": "submitted"}
        )
        assert waiting.headers["x-total-count"] == "3"
        page = staff.get("/api/v1/activities", params={"community_code": HOME, "limit": 1})
        assert len(page.json()) == 1 and page.headers["x-total-count"] == "3"
        assert staff.get("/api/v1/activities").status_code == 422  # which community?
        elsewhere = staff.get("/api/v1/activities", params={"community_code": "410303002001"})
        assert elsewhere.status_code == 404

    with client(issue_token(backend, "community", "community:410303002001")) as other:
        refused = other.get("/api/v1/activities", params={"community_code": HOME})
        assert refused.status_code == 404


def test_a_communitys_office_phone_is_loaded_checked_and_shown(backend: Any) -> None:
    load_sample_directory(backend)
    header = "kind,code,name,parent_code,phone\n"
    with client(issue_token(backend, "admin", "city")) as admin:
        good = header + "community,410303001001,王城社区,410303001,(0379) 6392 1009\n"
        loaded = admin.post("/api/v1/directory", files={"file": ("d.csv", good.encode())})
        assert loaded.status_code == 200 and loaded.json()["changed"] == 1
        shown = admin.get("/api/v1/directory/communities/410303001001").json()
        assert shown["phone"] == "(0379) 6392 1009"
        bad = header + "community,410303001001,王城社区,410303001,call me<script>\n"
        refused = admin.post("/api/v1/directory", files={"file": ("d.csv", bad.encode())})
        assert refused.status_code == 422
        assert refused.json()["errors"] == [
            {
                "row": "2",
                "field": "phone",
                "message": "an office number: digits, spaces, '-', '+' or brackets, at most 30",
            }
        ]
        again = admin.get("/api/v1/directory/communities/410303001001").json()
        assert again["phone"] == "(0379) 6392 1009"  # nothing of the bad file landed
