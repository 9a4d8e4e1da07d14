"""双对接 through the HTTP contract, on both backends: communities publish (also from xlsx),
members arrive through registration's events and are paired, the community report says
what is left and why, runs are incremental, members decline, staff override, scopes hold."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select

from services.pairing import tasks
from services.pairing.models import CommunityReplica, MemberReplica, Pairing
from shared.events import parse
from tests import support

HERE = "410303001001"  # 王城社区, district 410303
ELSEWHERE = "410311001001"  # 开元社区, district 410311


@pytest.fixture
def admin(backend: Any) -> str:
    """The sample directory, known to pairing through its events."""
    support.load_sample_directory(backend)
    token = support.issue_token(backend, "admin", "city")
    support.relay_all(backend)
    assert support.run_consumers(
        [support.consumer(backend, "pairing")], until=lambda: _count(backend, CommunityReplica) == 6
    )
    return token


@pytest.fixture
def http(admin: str) -> Iterator[Any]:
    with support.client(admin) as c:
        yield c


@pytest.fixture
def staff(backend: Any, admin: str) -> Iterator[Any]:
    with support.client(support.issue_token(backend, "community", f"community:{HERE}")) as c:
        yield c


def _count(backend: Any, model: Any) -> int:
    with backend.rt("pairing").uow() as uow:
        return uow.session.scalar(select(func.count()).select_from(model)) or 0


def _pairings(backend: Any) -> dict[str, tuple[str, str, str]]:
    """Every pairing: id → (member, need or project, state)."""
    with backend.rt("pairing").uow() as uow:
        rows = uow.session.scalars(select(Pairing))
        return {
            str(p.id): (str(p.member_id), str(p.need_id or p.project_id), p.state) for p in rows
        }


def run_pairing(client: Any, scope: str) -> dict[str, Any]:
    """Start a run over HTTP (answered at once, queued), do it as pairing's worker does (the
    task's body, here), and follow it over HTTP until it is done: its summary."""
    started = client.post("/api/v1/pairings/run", json={"scope": scope})
    assert started.status_code == 202, started.text
    queued = started.json()
    assert (queued["state"], queued["scope"], queued["result"]) == ("queued", scope, None)
    assert started.headers["Location"] == f"/api/v1/pairings/runs/{queued['id']}"
    assert tasks.run_pairing(queued["id"]) == "done"
    assert tasks.run_pairing(queued["id"]) == "done"  # delivered again: nothing twice
    done = client.get(started.headers["Location"])
    assert done.status_code == 200, done.text
    job = done.json()
    assert (job["state"], job["phase"], job["error"]) == ("done", "done", None)
    assert job["started_at"] and job["finished_at"]
    result: dict[str, Any] = job["result"]
    assert result["run_id"] == job["id"] and job["progress"]["created"] == result["created"]
    return result


def arrive(
    backend: Any,
    http: Any,
    seeds: range,
    leaders: tuple[int, ...] = (),
    as_list: bool = False,
    **over: Any,
) -> list[str]:
    """Register members living in HERE (unit U410303001), confirm them there (one by one,
    or ``as_list`` the way staff confirm a morning's list), deliver the events to pairing,
    whose consumer pairs each newcomer as their confirmation arrives."""
    ids, registrations = [], []
    for seed in seeds:
        body = support.member_body(seed, unit_code="U410303001", residence_community_code=HERE)
        body |= {"is_leader_cadre": seed in leaders, "availability": ["weekend"], **over}
        member = http.post("/api/v1/members", json=body)
        assert member.status_code == 201, member.text
        reg = next(r for r in member.json()["registrations"] if r["community_code"] == HERE)
        if not as_list:
            assert http.post(f"/api/v1/registrations/{reg['id']}/confirm").status_code == 200
        ids.append(member.json()["id"])
        registrations.append(reg["id"])
    if as_list:
        done = http.post("/api/v1/registrations/confirm", json={"ids": registrations})
        assert done.json()["confirmed"] == len(ids), done.text
    support.relay_all(backend)

    def confirmed() -> bool:
        with backend.rt("pairing").uow() as uow:
            replicas = uow.session.scalars(select(MemberReplica)).all()
            states = {str(r.id): {c["code"]: c["state"] for c in r.communities} for r in replicas}
        return all(states.get(i, {}).get(HERE) == "confirmed" for i in ids)

    assert support.run_consumers(
        [support.consumer(backend, "pairing")], until=confirmed, settle=0.3
    )
    return ids


def xlsx(rows: list[list[Any]]) -> bytes:
    book = Workbook()
    for row in rows:
        book.active.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def publish(staff: Any, what: str, **body: Any) -> str:
    response = staff.post(f"/api/v1/communities/{HERE}/{what}", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


# --- publishing and pairing -------------------------------------------------------------------


def test_published_needs_and_projects_pair_confirmed_members_with_reasons(
    backend: Any, http: Any, staff: Any
) -> None:
    refused = staff.post(
        f"/api/v1/communities/{HERE}/targets", json={"category": "留守儿童", "label": "李小明"}
    )
    assert refused.status_code == 422
    assert [e["field"] for e in refused.json()["errors"]] == ["consent"]
    target = staff.post(
        f"/api/v1/communities/{HERE}/targets", json={"category": "空巢老人", "label": "张秀英"}
    ).json()
    assert (target["label"], target["sensitive"]) == ("张*", False)
    care = publish(staff, "needs", title="陪护就医", required_skill="医疗护理", volunteers_needed=2)
    visits = publish(
        staff, "needs", title="探访空巢老人", target_id=target["id"], volunteers_needed=4
    )
    calligraphy = publish(staff, "needs", title="春联书写", required_skill="书法绘画")
    patrol = publish(staff, "projects", kind="治安巡逻", title="夜间巡逻", capacity=3)
    publish(staff, "projects", kind="环境卫生", title="楼道清洁", capacity=2)
    assert publish(staff, "teams", name="银发护理队", speciality="医疗护理")

    sheet = xlsx(
        [
            ["标题", "所需专长", "所需人数", "服务时间"],
            ["法律咨询进社区", "法律咨询", 1, "周末"],
            ["飞行表演", "飞行", 1, "周末"],  # row 3: no such skill
            ["政策宣讲", "政策宣讲", 2, "工作日晚上、周末"],
        ]
    )
    upload = staff.post(
        f"/api/v1/communities/{HERE}/needs/upload", files={"file": ("needs.xlsx", sheet)}
    )
    assert upload.status_code == 201, upload.text
    assert (upload.json()["accepted"], upload.json()["rejected"]) == (2, 1)
    assert [(e["row"], e["field"]) for e in upload.json()["errors"]] == [(3, "required_skill")]
    assert len(staff.get(f"/api/v1/communities/{HERE}/needs").json()) == 5
    csv = "项目类型,项目名称,所需专长,人数上限\n文体活动,书法班,书法绘画,1\n治安巡逻,巡逻,,很多\n"
    projects = staff.post(
        f"/api/v1/communities/{HERE}/projects/upload",
        files={"file": ("projects.csv", csv.encode("gbk"))},
    )
    assert projects.status_code == 201, projects.text
    (calligraphy_class,) = projects.json()["ids"]
    assert [(e["row"], e["field"]) for e in projects.json()["errors"]] == [(3, "capacity")]
    nothing = staff.post(
        f"/api/v1/communities/{HERE}/needs/upload",
        files={"file": ("needs.csv", "标题,所需专长\n修飞机,飞行\n".encode())},
    )
    assert nothing.status_code == 422
    assert nothing.json()["errors"][0]["row"] == 2

    # six members arrive, a leading cadre first: six need places suit them, five projects
    skills = ["医疗护理", "助老服务"]
    leader, *_ = arrive(backend, http, range(6), leaders=(0,), skills=skills)
    assert _count(backend, Pairing) > 0  # each confirmation paired the community at once
    run = run_pairing(staff, f"community:{HERE}")
    assert run["members"] == 6 and run["run_id"]

    team = {"name": "治安巡逻队", "speciality": "治安巡逻", "leader": leader}
    assert staff.post(f"/api/v1/communities/{HERE}/teams", json=team).status_code == 201
    team["leader"] = "00000000-0000-0000-0000-000000000000"
    unknown = staff.post(f"/api/v1/communities/{HERE}/teams", json=team)
    assert [e["field"] for e in unknown.json()["errors"]] == ["leader_member_id"]

    mine = http.get(f"/api/v1/members/{leader}/pairings").json()
    assert mine["dual_paired"] is True
    need = next(p for p in mine["pairings"] if p["kind"] == "need")
    assert need["reason"]["title"] in ("陪护就医", "探访空巢老人")
    assert need["reason"]["skill"] in ("医疗护理", "助老服务")

    report = staff.get(f"/api/v1/communities/{HERE}/pairing-report").json()
    assert (report["confirmed"], report["dual_paired"]) == (6, 5)  # five project places
    assert report["leaders_dual_paired"] == 1
    (left,) = report["unpaired_members"]
    # the one project place left asks for calligraphy, which nobody here has
    assert (left["missing"], left["reason"]) == (["project"], "no_matching_skill")
    uncovered = {n["id"]: n["reason"] for n in report["uncovered_needs"]}
    assert uncovered[calligraphy] == "no_matching_skill"
    assert care not in uncovered and visits not in uncovered
    assert [(p["id"], p["reason"]) for p in report["unfilled_projects"]] == [
        (calligraphy_class, "no_matching_skill")
    ]
    listed = {p["id"]: p for p in staff.get(f"/api/v1/communities/{HERE}/projects").json()}
    assert (listed[patrol]["paired"], listed[patrol]["open_places"]) == (3, 0)

    with backend.rt("pairing").uow() as uow:
        outbox = uow.session.execute(select(uow.db.metadata.tables["outbox"].c.body)).scalars()
        made = [parse(body)[0] for body in outbox]
    assert {e.routing_key for e in made} == {"410303.pairing.made"}
    assert len(made) == _count(backend, Pairing)


def test_an_incremental_run_after_100_new_members_changes_no_existing_pairing(
    backend: Any, http: Any, staff: Any
) -> None:
    for title in ("探访空巢老人", "助老送餐"):
        publish(staff, "needs", title=title, category="空巢老人", volunteers_needed=80)
    publish(staff, "needs", title="陪护就医", required_skill="医疗护理", volunteers_needed=40)
    publish(staff, "projects", kind="文明创建", title="文明楼院", capacity=150)
    arrive(backend, http, range(100, 110), skills=["医疗护理"])
    run_pairing(staff, f"community:{HERE}")
    before = _pairings(backend)
    newcomers = arrive(backend, http, range(200, 300), as_list=True)
    run = run_pairing(http, "district:410303")
    after = _pairings(backend)
    assert {k: after[k] for k in before} == before  # same ids, members, subjects, states
    assert run["dual_paired"] == 110
    paired = {member for member, _, state in after.values() if state == "active"}
    assert set(newcomers) <= paired


def test_declines_are_never_offered_again_staff_override_and_scopes_hold(
    backend: Any, http: Any, staff: Any
) -> None:
    needs = {publish(staff, "needs", title=f"探访{i}", category="空巢老人") for i in range(2)}
    publish(staff, "projects", kind="文明创建", title="文明楼院", capacity=5)
    (member,) = arrive(backend, http, range(400, 401))
    declined = set()
    me = support.issue_token(backend, "member", f"member:{member}")
    with support.client(me) as own:
        for _ in needs:
            pairing = next(
                p for p in own.get(f"/api/v1/members/{member}/pairings").json()["pairings"]
                if p["kind"] == "need" and p["state"] == "active"
            )  # fmt: skip
            assert staff.post(f"/api/v1/pairings/{pairing['id']}/decline").status_code == 403
            done = own.post(f"/api/v1/pairings/{pairing['id']}/decline")
            assert done.json()["state"] == "declined"
            assert own.post(f"/api/v1/pairings/{pairing['id']}/decline").status_code == 409
            declined.add(pairing["need_id"])
            run = run_pairing(staff, f"community:{HERE}")
        assert declined == needs
        active = [
            p
            for p in own.get(f"/api/v1/members/{member}/pairings").json()["pairings"]
            if p["state"] == "active"
        ]
        assert [p["kind"] for p in active] == ["project"]  # both needs declined, none re-offered
        assert own.delete(f"/api/v1/pairings/{active[0]['id']}").status_code == 403
    report = staff.get(f"/api/v1/communities/{HERE}/pairing-report").json()
    assert report["unpaired_members"][0]["reasons"] == {"need": "no_capacity"}

    manual = staff.post("/api/v1/pairings", json={"member_id": member, "need_id": sorted(needs)[0]})
    assert manual.status_code == 201, manual.text
    assert (manual.json()["source"], manual.json()["state"]) == ("staff", "active")
    again = staff.post("/api/v1/pairings", json={"member_id": member, "need_id": sorted(needs)[0]})
    assert again.status_code == 409
    removed = staff.delete(f"/api/v1/pairings/{manual.json()['id']}")
    assert removed.json()["state"] == "removed"
    assert staff.delete(f"/api/v1/pairings/{manual.json()['id']}").status_code == 409
    with backend.rt("pairing").uow() as uow:
        keys = uow.session.execute(select(uow.db.metadata.tables["outbox"].c.routing_key)).scalars()
        assert sorted(set(keys)) == ["410303.pairing.ended", "410303.pairing.made"]

    # scopes: other communities and districts see nothing; members may not publish
    path = f"/api/v1/members/{member}/pairings"
    for role, scope, status in [
        ("community", f"community:{ELSEWHERE}", 404),
        ("operator", "district:410311", 404),
        ("operator", "district:410303", 200),
        ("member", f"member:{member}", 200),
        ("member", "member:00000000-0000-0000-0000-000000000000", 404),
        ("leader", "city", 403),
    ]:
        with support.client(support.issue_token(backend, role, scope)) as c:
            assert c.get(path).status_code == status, (role, scope)
            if role in ("community", "operator") and status == 404:
                assert c.get(f"/api/v1/communities/{HERE}/pairing-report").status_code == 404
                assert c.get(f"/api/v1/communities/{HERE}/needs").status_code == 404
                body = {"title": "x", "category": "空巢老人"}
                assert c.post(f"/api/v1/communities/{HERE}/needs", json=body).status_code == 404
                assert (
                    c.post("/api/v1/pairings/run", json={"scope": f"community:{HERE}"}).status_code
                    == 404
                )
                assert c.get(f"/api/v1/pairings/runs/{run['run_id']}").status_code == 404
            if role == "operator" and status == 200:
                assert c.get(f"/api/v1/pairings/runs/{run['run_id']}").status_code == 200
            if role == "member" and status == 200:
                assert len(c.get(path).json()["pairings"]) == 4  # 2 declined, 1 removed
                body = {"title": "x", "category": "空巢老人"}
                assert c.post(f"/api/v1/communities/{HERE}/needs", json=body).status_code == 403
    assert staff.post("/api/v1/pairings/run", json={"scope": "city"}).status_code == 404
    bad = staff.post("/api/v1/pairings/run", json={"scope": "everywhere"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "scope"

    # withdrawal erases the member's pairings and the pairing events that name them
    assert http.delete(f"/api/v1/members/{member}").status_code == 200
    support.relay_all(backend)
    assert support.run_consumers(
        [support.consumer(backend, "pairing")],
        until=lambda: _count(backend, Pairing) == 0,
        settle=0.3,
    )
    with backend.rt("pairing").uow() as uow:
        bodies = uow.session.execute(select(uow.db.metadata.tables["outbox"].c.body)).scalars()
        assert not [b for b in bodies if member in b]
