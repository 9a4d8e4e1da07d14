"""Staff accounts through the HTTP contract, on both backends: the operator above them
creates them (one, or a file of them), sees them masked and in their district only,
disables them; notify's staff contacts follow through ``staff.saved``/``staff.disabled``."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import timedelta
from typing import Any

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select

from services.demo_data import COMMUNITIES, UNITS
from services.demo_outreach import Outreach
from services.notify.contacts import staff_for
from services.registration.models import StaffAccount
from services.registration.staff import MAX_ROWS
from shared import tokens
from shared.events import Envelope, parse
from tests import support

HERE = "410303001001"  # a community of district 410303
NEIGHBOUR = "410305001001"  # a community of district 410305
WORKER = {
    "name": "李红",
    "phone": "+86 139-0000-1111",
    "email": "lihong@example.cn",
    "role": "community",
    "scope": f"community:{HERE}",
}


@pytest.fixture
def admin(backend: Any) -> Any:
    support.load_sample_directory(backend)
    with support.client(support.issue_token(backend, "admin", "city")) as http:
        yield http


@pytest.fixture
def operator(backend: Any, admin: Any) -> Any:
    with support.client(support.issue_token(backend, "operator", "district:410303")) as http:
        yield http


def outbox_size(backend: Any) -> int:
    table = backend.rt("registration").db.metadata.tables["outbox"]
    with backend.rt("registration").db.session() as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


def outbox_events(backend: Any) -> list[Envelope]:
    table = backend.rt("registration").db.metadata.tables["outbox"]
    with backend.rt("registration").db.session() as session:
        bodies = session.scalars(select(table.c.body).order_by(table.c.position))
        return [parse(body)[0] for body in bodies]


def test_an_operator_creates_staff_in_their_district_and_nowhere_else(
    backend: Any, admin: Any, operator: Any
) -> None:
    created = operator.post("/api/v1/staff", json=WORKER)
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["state"], body["phone"], body["email"]) == (
        "active",
        "139****1111",
        "l***@example.cn",
    )
    assert body["district_code"] == "410303"
    assert created.headers["Location"] == f"/api/v1/staff/{body['id']}"
    with backend.rt("registration").db.session() as session:
        account = session.get(StaffAccount, uuid.UUID(body["id"]))
        assert account is not None
        sealer = backend.rt("registration").sealer
        assert account.phone_hmac == sealer.digest("13900001111")
        assert sealer.open(account.phone_sealed, "phone") == "13900001111"

    again = operator.post("/api/v1/staff", json={**WORKER, "name": "李红红"})
    assert again.status_code == 409 and again.json()["id"] == body["id"]
    # the same person may staff the unit too: another account
    organiser = {**WORKER, "role": "unit", "scope": "unit:U410303001"}
    assert operator.post("/api/v1/staff", json=organiser).status_code == 201
    leader = {**WORKER, "role": "leader", "scope": "district:410303"}
    assert operator.post("/api/v1/staff", json=leader).status_code == 201

    for role, scope in (
        ("community", f"community:{NEIGHBOUR}"),  # the neighbour district's community
        ("unit", "unit:U410305001"),  # a unit of 410305
        ("unit", "unit:U410300001"),  # a city-level unit: the admin's
        ("leader", "city"),
        ("leader", "district:410305"),
        ("operator", "district:410303"),  # operators are the admin's to create
    ):
        refused = operator.post("/api/v1/staff", json={**WORKER, "role": role, "scope": scope})
        assert refused.status_code == 403, (role, scope, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"

    for role, scope in (("operator", "district:410305"), ("leader", "city")):
        made = admin.post("/api/v1/staff", json={**WORKER, "role": role, "scope": scope})
        assert made.status_code == 201, made.text
        assert made.json()["district_code"] == (None if scope == "city" else "410305")

    with support.client(support.issue_token(backend, "community", f"community:{HERE}")) as staff:
        assert staff.post("/api/v1/staff", json=WORKER).status_code == 403
        assert staff.get("/api/v1/staff").status_code == 403


def test_every_bad_field_is_named(admin: Any) -> None:
    bad = admin.post(
        "/api/v1/staff",
        json={"name": " ", "phone": "12345", "email": "not-mail", "role": "boss", "scope": "x"},
    )
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"
    assert {e["field"] for e in bad.json()["errors"]} == {"name", "phone", "email", "role"}
    for scope, message in (
        ("unit:U410303001", "a community account takes a scope of kind: community"),
        ("community:410303009009", "unknown community '410303009009'"),
        ("410303001002", None),  # a bare code is read by the role
    ):
        answer = admin.post("/api/v1/staff", json={**WORKER, "scope": scope})
        if message is None:
            assert answer.status_code == 201, answer.text
            assert answer.json()["scope"] == "community:410303001002"
        else:
            assert answer.status_code == 422
            assert answer.json()["errors"] == [{"field": "scope", "message": message}]
    unknown = admin.post(
        "/api/v1/staff", json={**WORKER, "role": "operator", "scope": "district:410399"}
    )
    assert unknown.json()["errors"] == [{"field": "scope", "message": "unknown district '410399'"}]


def staff_file(rows: list[list[str]], *, xlsx: bool) -> tuple[str, bytes, str]:
    header = ["姓名", "手机号", "电子邮箱", "角色", "范围"]
    if xlsx:
        book = Workbook()
        sheet = book.active
        assert sheet is not None
        sheet.append(header)
        for row in rows:
            sheet.append(row)
        buffer = io.BytesIO()
        book.save(buffer)
        return ("staff.xlsx", buffer.getvalue(), "application/octet-stream")
    text = io.StringIO()
    csv.writer(text).writerows([header, *rows])
    return ("staff.csv", text.getvalue().encode("utf-8-sig"), "text/csv")


ROWS = [
    ["李红", "13900001111", "lihong@example.cn", "community", f"community:{HERE}"],  # row 2
    ["王芳", "1390000222", "", "community", f"community:{HERE}"],  # 3: a digit short
    ["赵强", "13900003333", "", "社区工作者", "community:410303009009"],  # 4: no such community
    ["钱进", "13900004444", "", "unit", "unit:U410305001"],  # 5: the neighbour's unit
    ["李红", "+8613900001111", "", "community", HERE],  # 6: row 2 again
    ["孙丽", "13900005555", "", "单位组织员", "U410303001"],  # 7
    ["周明", "13900006666", "zhou@example.cn", "leader", "district:410303"],  # 8
    ["", "13900007777", "", "boss", ""],  # 9: three problems
]


@pytest.mark.parametrize("xlsx", [False, True], ids=["csv", "xlsx"])
def test_an_import_lands_good_rows_reports_bad_ones_and_repeats_nothing(
    backend: Any, operator: Any, xlsx: bool
) -> None:
    files = {"file": staff_file(ROWS, xlsx=xlsx)}
    first = operator.post("/api/v1/staff/import", files=files)
    assert first.status_code == 200, first.text
    result = first.json()
    counts = {k: result[k] for k in ("total", "accepted", "updated", "unchanged", "rejected")}
    assert counts == {"total": 8, "accepted": 3, "updated": 0, "unchanged": 0, "rejected": 5}
    assert [(e["row"], e["field"]) for e in result["errors"]] == [
        (3, "phone"),
        (4, "scope"),
        (5, "scope"),
        (6, "phone"),
        (9, "name"),
        (9, "role"),
        (9, "scope"),
    ]
    assert result["errors"][3]["message"] == "the same phone, role and scope as row 2"
    assert "outside your district 410303" in result["errors"][2]["message"]
    assert "13900001111" not in first.text
    events = outbox_size(backend)

    again = operator.post("/api/v1/staff/import", files=files).json()
    assert (again["accepted"], again["updated"], again["unchanged"], again["rejected"]) == (
        0,
        0,
        3,
        5,
    )
    assert outbox_size(backend) == events  # nothing changed, nothing published
    listed = operator.get("/api/v1/staff").json()
    assert sorted(a["name"] for a in listed) == ["周明", "孙丽", "李红"]

    renamed = [["李虹", *ROWS[0][1:]], ROWS[6]]  # a new name, and one row as it was
    third = operator.post("/api/v1/staff/import", files={"file": staff_file(renamed, xlsx=xlsx)})
    assert (third.json()["updated"], third.json()["unchanged"]) == (1, 1)
    assert outbox_size(backend) == events + 1
    assert sorted(a["name"] for a in operator.get("/api/v1/staff").json()) == [
        "周明",
        "孙丽",
        "李虹",
    ]


def test_an_unreadable_or_headless_file_is_refused_whole(operator: Any) -> None:
    headless = operator.post(
        "/api/v1/staff/import",
        files={"file": ("x.csv", "李红,13900001111\n".encode(), "text/csv")},
    )
    assert headless.status_code == 422
    assert {e["field"] for e in headless.json()["errors"]} == {"name", "phone", "role", "scope"}
    broken = operator.post(
        "/api/v1/staff/import", files={"file": ("x.xlsx", b"PK\x03\x04garbage", "text/plain")}
    )
    assert broken.status_code == 422
    many = [[f"员工{i}", f"139{i:08d}", "", "community", HERE] for i in range(MAX_ROWS + 1)]
    too_many = operator.post("/api/v1/staff/import", files={"file": staff_file(many, xlsx=False)})
    assert too_many.status_code == 422 and too_many.json()["errors"][0]["field"] == "file"
    assert operator.get("/api/v1/staff").json() == []  # refused whole


def test_the_list_is_masked_and_scoped(backend: Any, admin: Any, operator: Any) -> None:
    mine = operator.post("/api/v1/staff", json=WORKER).json()
    organiser = {**WORKER, "role": "unit", "scope": "unit:U410303001", "phone": "13900002222"}
    operator.post("/api/v1/staff", json=organiser)
    theirs = admin.post("/api/v1/staff", json={**WORKER, "scope": f"community:{NEIGHBOUR}"}).json()
    admin.post("/api/v1/staff", json={**WORKER, "role": "leader", "scope": "city"})

    seen = operator.get("/api/v1/staff")
    assert seen.status_code == 200 and seen.headers["X-Total-Count"] == "2"
    assert {a["scope"] for a in seen.json()} == {f"community:{HERE}", "unit:U410303001"}
    assert all(a["phone"].startswith("139****") for a in seen.json())
    assert "13900001111" not in seen.text and "lihong@" not in seen.text
    only = operator.get("/api/v1/staff", params={"role": "unit"}).json()
    assert [a["scope"] for a in only] == ["unit:U410303001"]
    by_scope = operator.get("/api/v1/staff", params={"scope": f"community:{HERE}"}).json()
    assert [a["id"] for a in by_scope] == [mine["id"]]
    page = operator.get("/api/v1/staff", params={"limit": 1, "offset": 1})
    assert len(page.json()) == 1 and page.headers["X-Total-Count"] == "2"
    assert operator.get("/api/v1/staff", params={"limit": 100_000}).status_code == 422
    assert operator.get(f"/api/v1/staff/{theirs['id']}").status_code == 404
    assert operator.post(f"/api/v1/staff/{theirs['id']}/disable").status_code == 404

    everyone = admin.get("/api/v1/staff")
    assert everyone.headers["X-Total-Count"] == "4"


def dump(backend: Any, service: str, table: str) -> list[tuple[Any, ...]]:
    db = backend.rt(service).db
    with db.session() as session:
        return [tuple(r) for r in session.execute(select(db.metadata.tables[table]))]


def notify_contacts(http: Any) -> dict[str, dict[str, Any]]:
    answer = http.get("/api/v1/contacts")
    assert answer.status_code == 200, answer.text
    return {c["id"]: c for c in answer.json()}


def test_the_contact_reaches_notify_and_a_disabled_account_hears_nothing(
    backend: Any, admin: Any, operator: Any
) -> None:
    account = operator.post("/api/v1/staff", json=WORKER).json()
    kept = [str(row) for row in dump(backend, "registration", "staff_accounts")]
    kept += [e.model_dump_json() for e in outbox_events(backend)]
    assert not [text for text in kept if "13900001111" in text or "lihong@" in text]
    support.relay_all(backend)
    notify = support.consumer(backend, "notify")
    assert support.run_consumers([notify], until=lambda: account["id"] in notify_contacts(operator))
    contact = notify_contacts(operator)[account["id"]]
    held = [str(row) for row in dump(backend, "notify", "staff_contacts")]
    assert held and not [text for text in held if "13900001111" in text or "lihong@" in text]
    assert (contact["state"], contact["role"], contact["scope"]) == (
        "active",
        "community",
        f"community:{HERE}",
    )
    assert (contact["phone"], contact["email"], contact["name"]) == (
        "139****1111",
        "l***@example.cn",
        "李*",
    )
    rt = backend.rt("notify")
    with rt.uow() as uow:
        (staff,) = staff_for(uow, "community", f"community:{HERE}")
        assert str(staff.id) == account["id"]
    assert notify_contacts(admin).keys() == notify_contacts(operator).keys()
    with support.client(support.issue_token(backend, "operator", "district:410305")) as neighbour:
        assert notify_contacts(neighbour) == {}

    disabled = operator.post(f"/api/v1/staff/{account['id']}/disable")
    assert disabled.status_code == 200 and disabled.json()["state"] == "disabled"
    events = outbox_size(backend)
    assert operator.post(f"/api/v1/staff/{account['id']}/disable").json()["state"] == "disabled"
    assert outbox_size(backend) == events  # disabling twice publishes once
    support.relay_all(backend)
    assert support.run_consumers(
        [support.consumer(backend, "notify")],
        until=lambda: notify_contacts(operator)[account["id"]]["state"] == "disabled",
    )
    with rt.uow() as uow:
        assert staff_for(uow, "community", f"community:{HERE}") == []
    # the first staff.saved once more (a copy published again): older, so it changes nothing
    saved = next(e for e in outbox_events(backend) if e.type == "staff.saved")
    notify.apply(saved.model_copy(update={"id": uuid.uuid4()}).model_dump_json())
    assert notify_contacts(operator)[account["id"]]["state"] == "disabled"

    enabled = operator.post(f"/api/v1/staff/{account['id']}/enable")
    assert enabled.json()["state"] == "active"
    support.relay_all(backend)
    assert support.run_consumers(
        [support.consumer(backend, "notify")],
        until=lambda: notify_contacts(operator)[account["id"]]["state"] == "active",
    )


def test_only_the_admin_disables_an_operator(backend: Any, admin: Any, operator: Any) -> None:
    colleague = admin.post(
        "/api/v1/staff", json={**WORKER, "role": "operator", "scope": "district:410303"}
    ).json()
    assert operator.get(f"/api/v1/staff/{colleague['id']}").status_code == 200
    assert operator.post(f"/api/v1/staff/{colleague['id']}/disable").status_code == 403
    assert admin.post(f"/api/v1/staff/{colleague['id']}/disable").json()["state"] == "disabled"


def test_a_disabled_account_s_sessions_stop_working(backend: Any, operator: Any) -> None:
    account = operator.post("/api/v1/staff", json=WORKER).json()
    token, _ = tokens.sign(
        backend.settings,
        subject=f"staff:{account['id']}",  # as sign-in names a staff account's session
        role="community",
        scope=f"community:{HERE}",
        ttl=timedelta(hours=1),
    )
    waiting = f"/api/v1/registrations?community_code={HERE}"
    with support.client(token) as staff:
        assert staff.get(waiting).status_code == 200
        assert operator.post(f"/api/v1/staff/{account['id']}/disable").status_code == 200
        assert staff.get(waiting).status_code == 401


def test_the_demo_s_staff_get_accounts_that_reach_notify(
    backend: Any, admin: Any, tmp_path: Any
) -> None:
    settings = backend.settings
    outreach = Outreach(admin, settings.campaign_start, settings.campaign_end, tmp_path)
    outreach.set_up()
    accounts = admin.get("/api/v1/staff").json()
    assert len(accounts) == len(COMMUNITIES) + len(UNITS)
    support.relay_all(backend)
    notify = support.consumer(backend, "notify")
    assert support.run_consumers(
        [notify], until=lambda: len(notify_contacts(admin)) == len(accounts)
    )
    assert notify_contacts(admin).keys() == {a["id"] for a in accounts}
