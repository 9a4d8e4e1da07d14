"""五个一 through the HTTP contract, on both backends: progress equals the verified records
(the automatic wish and team items included), hours are validated field by field, team
membership, the leading cadres' view, and every illegal move of a service record."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select

from services.pairing.models import MemberReplica, ServiceRecord, Team
from shared import runtime as runtime_mod
from shared.clock import SimulatedClock
from shared.config import CAMPAIGN_TZ
from shared.runtime import Runtime
from tests import support

HOME = "410303001001"  # 王城社区
KINDS = ("home_visit", "community_activity", "policy_talk", "wish", "team")


@pytest.fixture
def admin(backend: Any) -> Iterator[Any]:
    """Pairing on a simulated clock late in the campaign; the sample directory loaded."""
    rt = backend.rt("pairing")
    sim = SimulatedClock(datetime(2016, 7, 20, 18, 0, tzinfo=CAMPAIGN_TZ))
    backend.runtimes["pairing"] = Runtime(rt.service, rt.settings, rt.db, sim)
    runtime_mod.override("pairing", backend.runtimes["pairing"])
    support.load_sample_directory(backend)
    with support.client(support.issue_token(backend, "admin", "city")) as http:
        yield http


def enrol(backend: Any, http: Any, seeds: list[int], cadre: bool = False) -> list[str]:
    """Members living in HOME register, staff confirm them there, pairing learns them."""
    ids = []
    for seed in seeds:
        body = support.member_body(seed, residence_community_code=HOME, unit_code="U410305001")
        created = http.post("/api/v1/members", json={**body, "is_leader_cadre": cadre})
        assert created.status_code == 201, created.text
        reg = next(r for r in created.json()["registrations"] if r["community_code"] == HOME)
        assert http.post(f"/api/v1/registrations/{reg['id']}/confirm").status_code == 200
        ids.append(created.json()["id"])
    support.relay_all(backend)
    db = backend.rt("pairing").db

    def learned() -> bool:
        with db.session() as s:
            rows = s.scalars(select(MemberReplica)).all()
        confirmed = {str(m.id) for m in rows for c in m.communities if c["state"] == "confirmed"}
        return set(ids) <= confirmed

    assert support.run_consumers([support.consumer(backend, "pairing")], until=learned, timeout=60)
    return ids


def team(backend: Any, name: str = "助老服务队") -> str:
    """A service team of HOME (publishing teams is the needs part's route; not tested here)."""
    rt = backend.rt("pairing")
    with rt.uow() as uow:
        row = Team(community_code=HOME, name=name, speciality="助老服务", created_at=uow.now())
        uow.session.add(row)
        uow.commit()
        return str(row.id)


def record(http: Any, member_id: str, kind: str, **fields: Any) -> Any:
    body = {"member_id": member_id, "kind": kind, "community_code": HOME, "date": "2016-07-02"}
    return http.post("/api/v1/activities", json={**body, **fields})


def from_records(backend: Any, member_id: str) -> dict[str, Any]:
    """What the verified records in the database say, computed independently."""
    with backend.rt("pairing").db.session() as s:
        rows = s.scalars(
            select(ServiceRecord).where(
                ServiceRecord.member_id == uuid.UUID(member_id), ServiceRecord.state == "verified"
            )
        ).all()
    kinds = {r.kind for r in rows}
    return {
        "member_id": member_id,
        **{k: k in kinds for k in KINDS},
        "complete": kinds == set(KINDS),
        "hours": round(sum(r.hours for r in rows), 2),
        "missing": [k for k in KINDS if k not in kinds],
    }


def event_types(backend: Any) -> list[str]:
    outbox = backend.rt("pairing").db.metadata.tables["outbox"]
    with backend.rt("pairing").db.session() as s:
        keys = s.scalars(select(outbox.c.routing_key).order_by(outbox.c.position))
        return [k.split(".", 1)[1] for k in keys]


def test_progress_equals_the_verified_records_with_the_automatic_wish_and_team_items(
    backend: Any, admin: Any
) -> None:
    member, other = enrol(backend, admin, [500, 501])
    (cadre,) = enrol(backend, admin, [502], cadre=True)
    progress = f"/api/v1/members/{member}/progress"
    with support.client(support.issue_token(backend, "member", f"member:{member}")) as me:
        visit = record(me, member, "home_visit", hours=2)
        patrol = record(me, member, "community_activity", start_time="09:00", end_time="11:30")
        talk = record(
            me, member, "policy_talk", start_time="14:00", end_time="15:00", note="政策宣讲"
        )
        for sent in (visit, patrol, talk):
            assert sent.status_code == 201 and sent.json()["state"] == "submitted", sent.text
        assert patrol.json()["hours"] == 2.5
        assert me.get(progress).json() == from_records(backend, member)  # nothing verified yet
        assert admin.post(f"/api/v1/activities/{visit.json()['id']}/verify").status_code == 200
        assert admin.post(f"/api/v1/activities/{patrol.json()['id']}/verify").status_code == 200
        returned = admin.post(
            f"/api/v1/activities/{talk.json()['id']}/return", json={"reason": "缺少照片"}
        )
        assert returned.json()["state"] == "returned"
        assert me.get(progress).json() == from_records(backend, member)
        assert me.get(progress).json()["hours"] == 4.5
        # a returned record frees its time: the member records the talk again
        again = record(me, member, "policy_talk", start_time="14:00", end_time="15:00")
        assert admin.post(f"/api/v1/activities/{again.json()['id']}/verify").status_code == 200

        # the wish item: filled when staff confirm the fulfilled wish, once per member
        for n, title in enumerate(("买药", "修门锁")):
            wish = admin.post("/api/v1/wishes", json={"community_code": HOME, "title": title})
            wish_id = wish.json()["id"]
            for step in ("submit", "publish"):
                admin.post(f"/api/v1/wishes/{wish_id}/{step}")
            me.post(f"/api/v1/wishes/{wish_id}/claim", json={"member_id": member})
            me.post(f"/api/v1/wishes/{wish_id}/fulfil")
            assert me.get(progress).json()["wish"] is (n > 0)  # not before staff confirm
            assert admin.post(f"/api/v1/wishes/{wish_id}/confirm").status_code == 200
        assert me.get(progress).json()["wish"] is True

        # the team item: a request does not count, the confirmation does
        team_id = team(backend)
        joined = me.post(f"/api/v1/teams/{team_id}/members", json={"member_id": member})
        assert joined.status_code == 201 and joined.json()["state"] == "requested"
        assert (
            me.post(f"/api/v1/teams/{team_id}/members", json={"member_id": other}).status_code
            == 403
        )
        assert me.get(progress).json()["team"] is False
        confirm = f"/api/v1/teams/{team_id}/members/{member}/confirm"
        assert me.post(confirm).status_code == 403
        assert admin.post(confirm).json()["state"] == "confirmed"
        done = me.get(progress).json()
    assert done == from_records(backend, member)
    assert done["complete"] is True and done["missing"] == [] and done["hours"] == 5.5
    automatic = [e for e in event_types(backend) if e == "activity.verified"]
    assert len(automatic) == 3 + 2  # three verified by staff, the wish and the team item

    # staff add a member straight in; leaving keeps what was done
    added = admin.post(f"/api/v1/teams/{team_id}/members", json={"member_id": other})
    assert added.json()["state"] == "confirmed"
    left = admin.delete(f"/api/v1/teams/{team_id}/members/{other}")
    assert left.json()["state"] == "left"
    assert admin.get(f"/api/v1/members/{other}/progress").json()["team"] is True
    assert [e for e in event_types(backend) if e.startswith("team.")] == [
        "team.join_requested",
        "team.joined",
        "team.joined",
        "team.left",
    ]

    # leading cadres: their progress is visible on its own
    record(admin, cadre, "home_visit", hours=3)
    with support.client(support.issue_token(backend, "community", f"community:{HOME}")) as staff:
        view = staff.get(f"/api/v1/communities/{HOME}/leading-cadres/progress").json()
    assert (view["leading_cadres"], view["active"], view["complete"]) == (1, 0, 0)
    assert view["members"][0]["member_id"] == cadre
    with support.client(support.issue_token(backend, "leader", "city")) as leader:
        unit = leader.get("/api/v1/units/U410305001/leading-cadres/progress").json()
        assert [m["member_id"] for m in unit["members"]] == [cadre]
        assert leader.get(progress).status_code == 403


def test_hours_are_validated_and_every_illegal_move_of_a_record_is_refused(
    backend: Any, admin: Any
) -> None:
    (member,) = enrol(backend, admin, [600])
    ok = record(admin, member, "home_visit", start_time="14:00", end_time="16:00")
    assert ok.status_code == 201, ok.text
    cases: list[tuple[dict[str, Any], str]] = [
        ({"hours": 0}, "hours"),
        ({"hours": 13}, "hours"),
        ({"start_time": "15:00", "end_time": "17:00"}, "start_time"),  # overlaps 14–16
        ({"start_time": "08:00", "end_time": "07:00"}, "end_time"),
        ({"hours": 2, "date": "2016-06-25"}, "date"),  # before the kick-off
        ({"hours": 2, "date": "2016-08-01"}, "date"),  # after the campaign
        ({"hours": 2, "date": "2016-07-21"}, "date"),  # tomorrow, on the campaign clock
        ({"hours": 2, "community_code": "410303001002"}, "community_code"),  # not reported in
        ({"hours": 2, "kind": "dancing"}, "kind"),
    ]
    for fields, bad in cases:
        refused = record(admin, member, **{"kind": "policy_talk", **fields})
        assert refused.status_code == 422, (fields, refused.text)
        assert [e["field"] for e in refused.json()["errors"]] == [bad], (fields, refused.text)
    assert (
        record(admin, member, "policy_talk", start_time="16:00", end_time="17:00").status_code
        == 201
    )

    with support.client(
        support.issue_token(backend, "member", f"member:{uuid.uuid4()}")
    ) as stranger:
        assert record(stranger, member, "home_visit", hours=1).status_code == 403
        assert stranger.get(f"/api/v1/members/{member}/progress").status_code == 404

    verified = ok.json()["id"]
    returned = record(admin, member, "wish", hours=1).json()["id"]
    assert admin.post(f"/api/v1/activities/{verified}/verify").status_code == 200
    assert admin.post(f"/api/v1/activities/{returned}/return", json={}).status_code == 422
    assert (
        admin.post(f"/api/v1/activities/{returned}/return", json={"reason": "重复"}).status_code
        == 200
    )
    for record_id, state in ((verified, "verified"), (returned, "returned")):
        before = admin.get(f"/api/v1/activities/{record_id}").json()
        count = len(event_types(backend))
        for action, body in (("verify", None), ("return", {"reason": "再看看"})):
            refused = admin.post(f"/api/v1/activities/{record_id}/{action}", json=body)
            assert refused.status_code == 409, (state, action)
            assert (refused.json()["state"], refused.json()["allowed"]) == (state, [])
        assert admin.get(f"/api/v1/activities/{record_id}").json() == before
        assert len(event_types(backend)) == count

    team_id = team(backend)
    join = f"/api/v1/teams/{team_id}/members"
    assert admin.post(join, json={"member_id": member}).status_code == 201  # confirmed
    assert admin.post(join, json={"member_id": member}).status_code == 409
    assert admin.post(f"{join}/{member}/confirm").status_code == 409
    assert admin.delete(f"{join}/{member}").json()["state"] == "left"
    again = admin.delete(f"{join}/{member}")
    assert again.status_code == 409 and again.json()["allowed"] == ["requested", "confirmed"]


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)  # masking is not the backend's
def test_a_number_typed_into_a_note_a_reason_or_a_team_name_is_kept_masked(
    backend: Any, admin: Any
) -> None:
    """A record's note, why it was returned and a team's name are free text: a mobile or an
    ID number typed there is kept masked, in the table and in the events (found by the
    personal-data scan: they were stored in clear)."""
    (member,) = enrol(backend, admin, [71])
    made = record(admin, member, "home_visit", hours=2, note="看望张阿姨 13812348000")
    assert made.status_code == 201, made.text
    assert made.json()["note"] == "看望张阿姨 138****8000"
    returned = admin.post(
        f"/api/v1/activities/{made.json()['id']}/return",
        json={"reason": "请补充，身份证 410303198001010015"},
    )
    assert returned.status_code == 200, returned.text
    assert "410303198001010015" not in returned.text
    published = admin.post(
        f"/api/v1/communities/{HOME}/teams",
        json={"name": "助老队 联系 13812348000", "speciality": "助老服务"},
    )
    assert published.status_code == 201, published.text
    assert published.json()["name"] == "助老队 联系 138****8000"
    with backend.rt("pairing").db.session() as s:
        stored = [r.note for r in s.scalars(select(ServiceRecord))]
        stored += [r.reason for r in s.scalars(select(ServiceRecord))]
        stored += [t.name for t in s.scalars(select(Team))]
    assert not any("13812348000" in (v or "") or "410303198001010015" in (v or "") for v in stored)
