"""Registration through the HTTP contract, on both backends: validation, dual registration,
access scopes, routing by community district, personal data, withdrawal."""

from __future__ import annotations

import logging
import subprocess
import uuid
from typing import Any

import pytest
from sqlalchemy import MetaData, select

from services.registration.rules import check_character
from shared.config import load
from shared.events import parse
from tests import support

GOOD = {
    "name": "王建国",
    "id_number": "410302195001010015",
    "phone": "+86 138-1234-8000",
    "email": "wang@example.cn",
    "unit_code": "U410303001",  # county-level unit, community 410303001002 (district 410303)
    "residence_community_code": "410305001001",  # lives in district 410305
    "skills": ["医疗护理", "政策宣讲"],
    "availability": ["weekend"],
    "is_leader_cadre": False,
    "consent": True,
}


def id_with_region(region: str, born: str = "19800101", seq: str = "123") -> str:
    body = region + born + seq
    return body + check_character(body)


@pytest.fixture
def admin(backend: Any) -> str:
    support.load_sample_directory(backend)
    return support.issue_token(backend, "admin", "city")


@pytest.fixture
def http(admin: str) -> Any:
    with support.client(admin) as c:
        yield c


def register(http: Any, **overrides: Any) -> Any:
    return http.post("/api/v1/members", json={**GOOD, **overrides})


# --- 1. validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id_number", "410302195001010016"),  # bad check digit
        ("id_number", id_with_region("410302", "19500230")),  # 30 February
        ("id_number", id_with_region("410302", "20150101")),  # under 18
        ("id_number", id_with_region("999999")),  # region never existed
        ("phone", "138123480001"),  # 12 digits
        ("name", "王建国2"),  # digits in a name
        ("unit_code", "U999"),
        ("residence_community_code", "410399001001"),
        ("consent", False),
    ],
)
def test_each_invalid_field_is_refused_with_422_naming_it(
    http: Any, field: str, value: Any
) -> None:
    response = register(http, **{field: value})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in response.json()["errors"]] == [field]


def test_every_bad_field_is_named_at_once(http: Any) -> None:
    response = register(http, name="W", phone="123", consent=False)
    assert {e["field"] for e in response.json()["errors"]} == {"name", "phone", "consent"}


def test_old_luoyang_region_codes_are_accepted(http: Any) -> None:
    assert register(http).status_code == 201  # 410302195001010015
    jili = register(http, id_number=id_with_region("410306"), phone="13912345678")
    assert jili.status_code == 201, jili.text
    assert jili.json()["id_number"] == "410***********" + id_with_region("410306")[-4:]


def test_a_second_registration_with_the_same_id_is_refused_without_saying_whose(
    http: Any,
) -> None:
    assert register(http).status_code == 201
    again = register(http, name="李四", phone="13912345678", id_number="410302500101001")
    # the 15-digit form of the same person converts to the same 18-digit number
    assert again.status_code == 409
    assert "王" not in again.text and "138" not in again.text


def test_a_member_is_registered_in_the_unit_and_the_residence_community(http: Any) -> None:
    body = register(http).json()
    assert body["phone"] == "138****8000"
    assert {(r["role"], r["community_code"], r["state"]) for r in body["registrations"]} == {
        ("unit", "410303001002", "submitted"),
        ("residence", "410305001001", "submitted"),
    }


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
def test_staff_registering_a_member_get_the_member_and_no_session(http: Any) -> None:
    body = register(http).json()
    assert set(body) == {
        "id", "state", "name", "id_number", "phone", "unit_code", "residence_community_code",
        "skills", "skills_other", "availability", "is_leader_cadre", "registrations",
    }  # fmt: skip
    assert set(body["registrations"][0]) == {
        "id", "community_code", "district_code", "role", "state", "reason",
    }  # fmt: skip


def test_free_text_skills_map_to_the_vocabulary_and_the_rest_is_kept_as_own_words(
    backend: Any, http: Any
) -> None:
    created = register(http, skills=["法律、教育", "会修电脑", "摄影", "医疗护理"])
    member_id = created.json()["id"]
    read = http.get(f"/api/v1/members/{member_id}").json()
    changed = http.patch(f"/api/v1/members/{member_id}", json={"skills": ["唱歌跳舞", "钓鱼"]})
    known = http.patch(f"/api/v1/members/{member_id}", json={"skills": ["家电维修"]})
    envelopes = [parse(r["body"])[0] for r in _rows(backend, "registration", "outbox")]

    assert created.status_code == 201, created.text
    assert read["skills"] == ["法律咨询", "教育辅导", "信息技术", "医疗护理"]
    assert read["skills_other"] == ["摄影"]
    assert changed.status_code == 200, changed.text
    assert (changed.json()["skills"], changed.json()["skills_other"]) == (["文艺演出"], ["钓鱼"])
    assert (known.json()["skills"], known.json()["skills_other"]) == (["家电维修"], [])
    registered = [e.payload for e in envelopes if e.type == "member.registered"]
    assert [p["skills"] for p in registered] == [read["skills"]] * len(registered) != []
    assert "摄影" not in str(registered)  # events carry vocabulary terms only


def test_phones_ids_and_codes_typed_with_full_width_digits_prefixes_and_dashes_register(
    http: Any,
) -> None:
    ends_in_x = next(i for i in (id_with_region("410302", seq=f"{n:03d}") for n in range(200))
                     if i.endswith("X"))  # fmt: skip
    first = register(http, phone="＋８６ １３８－１２３４－８０００",
                     residence_community_code="４１０３０５ ００１００１")  # fmt: skip
    again = register(http, id_number="４１０３０２５００１０１００１", phone="0086 139 1234 8000")
    lower_x = register(http, id_number=ends_in_x[:17] + "ｘ", phone="86-137-1234-8000")

    assert first.status_code == 201, first.text
    assert first.json()["phone"] == "138****8000"
    assert first.json()["residence_community_code"] == "410305001001"
    assert again.status_code == 409  # the first one's 15-digit number, in full-width digits
    assert lower_x.status_code == 201, lower_x.text
    assert (lower_x.json()["id_number"], lower_x.json()["phone"]) == (
        "410***********" + ends_in_x[-4:],
        "137****8000",
    )


# --- dual registration state machine -------------------------------------------------------


def test_community_staff_confirm_and_reject_with_a_reason(backend: Any, http: Any) -> None:
    regs = {r["role"]: r for r in register(http).json()["registrations"]}
    staff = support.issue_token(backend, "community", "community:410305001001")
    with support.client(staff) as c:
        ok = c.post(f"/api/v1/registrations/{regs['residence']['id']}/confirm")
        assert ok.status_code == 200 and ok.json()["state"] == "confirmed"
        again = c.post(f"/api/v1/registrations/{regs['residence']['id']}/confirm")
        assert again.status_code == 409
        assert again.json()["state"] == "confirmed"
        assert again.json()["allowed"] == ["transferred_out", "cancelled"]
        # the unit community's registration is not this community's business
        other = c.post(f"/api/v1/registrations/{regs['unit']['id']}/reject", json={"reason": "x"})
        assert other.status_code == 404
    unit_staff = support.issue_token(backend, "community", "community:410303001002")
    with support.client(unit_staff) as c:
        no_reason = c.post(f"/api/v1/registrations/{regs['unit']['id']}/reject", json={})
        assert no_reason.status_code == 422
        rejected = c.post(
            f"/api/v1/registrations/{regs['unit']['id']}/reject", json={"reason": "查无此人"}
        )
        assert rejected.json()["state"] == "rejected" and rejected.json()["reason"] == "查无此人"


def test_a_community_confirms_its_whole_list_at_once_and_only_its_own(
    backend: Any, http: Any
) -> None:
    first = register(http).json()
    second = register(http, id_number=id_with_region("410306"), phone="13912345678").json()
    ids = [r["id"] for m in (first, second) for r in m["registrations"]]
    staff = support.issue_token(backend, "community", "community:410305001001")
    with support.client(staff) as c:
        listed = c.get(
            "/api/v1/registrations",
            params={"community_code": "410305001001", "state": "submitted"},
        ).json()
        assert len(listed) == 2
        result = c.post("/api/v1/registrations/confirm", json={"ids": ids}).json()
    assert result["confirmed"] == 2  # the two residence registrations in 410305001001
    assert {r["reason"] for r in result["refused"]} == {"not found"}
    assert len(result["refused"]) == 2  # the unit community's registrations are not theirs
    with support.client(staff) as c:
        again = c.post("/api/v1/registrations/confirm", json={"ids": ids[:1]}).json()
    assert again["confirmed"] == 0


def test_moving_residence_transfers_the_confirmed_registration_out(backend: Any, http: Any) -> None:
    member = register(http).json()
    residence = next(r for r in member["registrations"] if r["role"] == "residence")
    assert http.post(f"/api/v1/registrations/{residence['id']}/confirm").status_code == 200
    moved = http.patch(
        f"/api/v1/members/{member['id']}", json={"residence_community_code": "410311001001"}
    ).json()
    states = {(r["community_code"], r["state"]) for r in moved["registrations"]}
    assert ("410305001001", "transferred_out") in states
    assert ("410311001001", "submitted") in states
    assert moved["residence_community_code"] == "410311001001"


# --- 4. access matrix ----------------------------------------------------------------------

# The member: unit U410303001 (community 410303001002, district 410303), living in
# 410305001001 (district 410305).
MATRIX = [
    # role, scope, GET, PATCH
    ("admin", "city", 200, 200),
    ("operator", "district:410303", 200, 200),
    ("operator", "district:410305", 200, 200),
    ("operator", "district:410311", 404, 404),
    ("unit", "unit:U410303001", 200, 403),
    ("unit", "unit:U410305001", 404, 404),
    ("community", "community:410305001001", 200, 403),
    ("community", "community:410311001001", 404, 404),
    ("member", "self", 200, 200),
    ("member", "member:00000000-0000-0000-0000-000000000000", 404, 404),
    ("leader", "city", 404, 404),
]


def test_the_access_matrix_holds_for_every_role_and_scope(backend: Any, http: Any) -> None:
    member = register(http).json()
    path = f"/api/v1/members/{member['id']}"
    with support.client() as anonymous:
        assert anonymous.get(path).status_code == 401
        assert anonymous.get("/api/v1/ops/registration").status_code == 401
    for role, scope, get_status, patch_status in MATRIX:
        scope = f"member:{member['id']}" if scope == "self" else scope
        with support.client(support.issue_token(backend, role, scope)) as c:
            got = c.get(path)
            assert got.status_code == get_status, (role, scope, got.text)
            if get_status == 200:
                assert got.json()["phone"] == "138****8000"
            changed = c.patch(path, json={"skills": ["法律咨询"]})
            assert changed.status_code == patch_status, (role, scope, changed.text)
            unmasked = c.get(path, params={"unmasked": "true"})
            expected = 200 if role in ("admin", "operator") and get_status == 200 else None
            if expected:
                assert unmasked.json()["phone"] == "13812348000"
            else:
                assert unmasked.status_code in (403, 404)
            ops = c.get("/api/v1/ops/registration").status_code
            assert ops == (200 if role in ("admin", "operator") else 403), (role, ops)
    audit = _rows(backend, "registration", "audit_log")
    assert len(audit) == 3  # admin and the two in-scope operators read unmasked data
    assert {a["role"] for a in audit} == {"admin", "operator"}


def test_a_community_member_confirmation_needs_a_staff_token(backend: Any, http: Any) -> None:
    member = register(http).json()
    reg = member["registrations"][0]["id"]
    as_member = support.issue_token(backend, "member", f"member:{member['id']}")
    with support.client(as_member) as c:
        assert c.post(f"/api/v1/registrations/{reg}/confirm").status_code == 403


# --- 5. routing by each community's district ----------------------------------------------


def test_a_city_unit_member_living_in_another_district_reaches_both(
    backend: Any, http: Any
) -> None:
    # U410300001: city level, community 410303001001, contact 410305001002; lives in 410311
    member = register(http, unit_code="U410300001", residence_community_code="410311001001")
    assert member.status_code == 201
    keys = [r["routing_key"] for r in _rows(backend, "registration", "outbox")]
    for district in ("410303", "410305", "410311"):
        assert keys.count(f"{district}.member.registered") == 1

    support.relay_all(backend)
    lives_in = load({**backend.env, "SERVICEMONTH_DISTRICT": "410311"})
    from services.pairing.consumers import handlers_for

    rt = backend.rt("pairing")
    from shared.consumer import EventConsumer

    district_pairing = EventConsumer(
        "pairing", lives_in, handlers_for(rt), lambda env: rt.uow(env.id), retry_delays=()
    )
    assert support.run_consumers(
        [district_pairing], until=lambda: support.stats(http, "pairing")["members"] == 1, settle=0.5
    )
    assert district_pairing.stats.applied >= 1


# --- 3. personal data never in clear ------------------------------------------------------


def test_no_id_number_or_mobile_in_clear_in_databases_logs_events_or_outbox(
    backend: Any, http: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    people = [support.member_body(s) for s in range(5)]
    for body in people:
        assert http.post("/api/v1/members", json=body).status_code == 201
    support.relay_all(backend)
    consumers = [support.consumer(backend, s) for s in support.CONSUMERS]
    support.run_consumers(
        consumers, until=lambda: support.stats(http, "notify")["contacts"] >= 5, settle=0.5
    )
    secrets = [p["id_number"] for p in people] + [p["phone"] for p in people]
    dump = "\n".join(_dump(backend, s) for s in ("registration", "pairing", "notify", "reporting"))
    dump += caplog.text
    for envelope in _rows(backend, "registration", "outbox"):
        dump += str(parse(envelope["body"])[0].payload)
    assert [s for s in secrets if s in dump] == []
    assert "138****" in dump or "*" in dump  # masked forms are there, so the scan saw data


# --- 6. withdrawal ---------------------------------------------------------------------------


def test_withdrawal_erases_the_member_from_all_four_services(backend: Any, http: Any) -> None:
    keep = http.post("/api/v1/members", json=support.member_body(1)).json()
    gone = register(http).json()
    support.relay_all(backend)
    consumers = [support.consumer(backend, s) for s in support.CONSUMERS]
    support.run_consumers(consumers, until=lambda: support.stats(http, "reporting")["members"] == 2)
    as_member = support.issue_token(backend, "member", f"member:{gone['id']}")
    with support.client(as_member) as c:
        assert c.delete(f"/api/v1/members/{gone['id']}").json()["state"] == "withdrawn"
        assert c.get(f"/api/v1/members/{gone['id']}").status_code == 401  # token revoked
    after = http.get(f"/api/v1/members/{gone['id']}").json()
    assert (after["state"], after["name"], after["phone"]) == ("withdrawn", None, None)
    support.relay_all(backend)
    consumers = [support.consumer(backend, s) for s in support.CONSUMERS]
    assert support.run_consumers(
        consumers,
        until=lambda: (
            support.stats(http, "reporting")["members"] == 1
            and support.stats(http, "pairing")["members"] == 1
            and support.stats(http, "notify")["contacts"] == 1
        ),
        settle=0.5,
    )
    member_id = gone["id"]
    row = next(
        r
        for r in _rows(backend, "registration", "members")
        if uuid.UUID(str(r["id"])) == uuid.UUID(member_id)
    )
    assert all(
        row[c] is None
        for c in ("name", "id_number_sealed", "id_number_hmac", "phone_sealed", "phone_masked")
    )
    for service in support.CONSUMERS:
        assert member_id.replace("-", "") not in _dump(backend, service).replace("-", ""), service
    assert keep["id"].replace("-", "") in _dump(backend, "pairing").replace("-", "")
    # the same person may register again later
    assert register(http).status_code == 201


# --- helpers ---------------------------------------------------------------------------------


def _rows(backend: Any, service: str, table: str) -> list[dict[str, Any]]:
    db = backend.rt(service).db
    meta = MetaData()
    meta.reflect(db.engine, only=[table])
    with db.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(meta.tables[table]))]


def _dump(backend: Any, service: str) -> str:
    """Everything the service's database holds, as text (pg_dump / every table's rows)."""
    db = backend.rt(service).db
    if not db.is_sqlite:
        url = db.engine.url
        done = subprocess.run(
            ["pg_dump", "-h", url.host or "127.0.0.1", "-U", url.username or "postgres",
             "--data-only", url.database or ""],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return done.stdout
    meta = MetaData()
    meta.reflect(db.engine)
    return "\n".join(str(_rows(backend, service, t)) for t in meta.tables)


# --- the vocabulary forms offer -------------------------------------------------------------


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
def test_the_vocabulary_is_public_cacheable_configuration(backend: Any) -> None:
    with support.client() as anonymous:
        response = anonymous.get("/api/v1/vocabulary")
    body = response.json()

    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=3600"
    assert set(body) == {
        "skills", "availability", "five_ones", "synonyms", "target_categories", "project_kinds"
    }  # fmt: skip
    assert len(body["skills"]) == 18 and body["skills"][0] == "医疗护理"
    assert body["availability"] == [
        {"value": "weekday_daytime", "label": "工作日白天"},
        {"value": "weekday_evening", "label": "工作日晚上"},
        {"value": "weekend", "label": "周末"},
    ]
    assert body["five_ones"][0] == {"kind": "home_visit", "label": "民情家访"}
    assert [f["kind"] for f in body["five_ones"]] == [
        "home_visit", "community_activity", "policy_talk", "wish", "team"
    ]  # fmt: skip
    assert body["synonyms"]["维修"] == ["家电维修", "水电维修"]
    assert body["synonyms"]["律师"] == ["法律咨询"]
    assert body["target_categories"][:2] == [
        {"value": "空巢老人", "sensitive": False},
        {"value": "留守儿童", "sensitive": True},
    ]
    assert body["project_kinds"][0] == "文明创建"
