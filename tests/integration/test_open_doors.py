"""Doors found open in review, each shut on both backends: anonymous or oversized provider
callbacks, directory rows outside an operator's district, list filters that reach past the
caller's scope, unbounded paging, uploads without a row cap, and state files others read."""

from __future__ import annotations

import dataclasses
import io
import os
import subprocess
import sys
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

from openpyxl import load_workbook
from sqlalchemy import func, select

from services.demo_data import SAMPLE_DIRECTORY
from services.notify.bulk import queue_message
from services.notify.messages import Recipient
from services.notify.models import Contact, StaffContact
from services.registration import tasks
from services.registration.models import Community, DirectoryChange, Roster, Unit
from shared.events import CommunityRef, MemberRegistered, SealedContact
from tests.integration.notify_support import apply
from tests.support import client, issue_token, load_sample_directory, stats

HERE, THERE = "410303", "410305"


def set_env(backend: Any, service: str, **env: str) -> None:
    rt = backend.rt(service)
    rt.settings = dataclasses.replace(rt.settings, env={**rt.settings.env, **env})


def notify_member(backend: Any, district: str, phone: str) -> uuid.UUID:
    """A member notify can reach, living in a community of ``district``."""
    member_id = uuid.uuid4()
    community = f"{district}001001"
    sealed = backend.rt("notify").sealer.seal_json(
        {"name": "张三", "phone": phone, "email": None}, SealedContact.CONTEXT
    )
    event = MemberRegistered(
        member_id=member_id,
        unit_code=f"U{district}001",
        unit_district=district,
        communities=[
            CommunityRef(
                registration_id=uuid.uuid4(),
                community_code=community,
                role="residence",
                district=district,
            )
        ],
        contact=SealedContact(sealed=sealed, phone_masked=phone[:3] + "****" + phone[-4:]),
    )
    assert apply(backend, event) == "applied"
    return member_id


def staff_contact(backend: Any, district: str) -> uuid.UUID:
    """Community staff of ``district`` whom notify can reach."""
    rt = backend.rt("notify")
    with rt.uow() as uow:
        contact = StaffContact(
            id=uuid.uuid4(),
            role="community",
            scope=f"community:{district}001001",
            district=district,
            sealed=rt.sealer.seal_json({"name": "李红"}, SealedContact.CONTEXT),
            name_masked="李*",
            phone_masked=f"139****{district[-4:]}",
            state="active",
            updated_at=uow.now(),
        )
        uow.session.add(contact)
        uow.commit()
        return contact.id


# --- 1. provider callbacks ------------------------------------------------------------------


def test_provider_callbacks_are_refused_without_a_configured_token_on_every_backend(
    backend: Any,
) -> None:
    member = notify_member(backend, HERE, "13812348000")
    reply = {"mobile": "13812348000", "text": "TD"}
    with client() as http:
        for path in ("replies", "receipts"):
            refused = http.post(f"/api/v1/providers/tencent/{path}", json=[reply])
            assert refused.status_code == 503, refused.text
            assert refused.json()["key"] == "SERVICEMONTH_NOTIFY_WEBHOOK_TOKEN"
    with backend.rt("notify").db.session() as session:
        contact = session.get(Contact, member)
        assert contact is not None and contact.sms_enabled  # nobody opted the number out


def test_a_callback_of_more_than_a_thousand_items_is_refused_before_anything_is_applied(
    backend: Any,
) -> None:
    member = notify_member(backend, HERE, "13812348000")
    set_env(backend, "notify", SERVICEMONTH_NOTIFY_WEBHOOK_TOKEN="callback-secret")
    replies = [{"mobile": "13812348000", "text": "TD"}] * 1001
    with client() as http:
        for path in ("replies", "receipts"):
            url = f"/api/v1/providers/tencent/{path}?token=callback-secret"
            refused = http.post(url, json=replies)
            assert refused.status_code == 422, refused.text
            assert [e["field"] for e in refused.json()["errors"]] == ["body"]
        accepted = http.post(
            "/api/v1/providers/tencent/replies?token=callback-secret", json=replies[:1000]
        )
    with backend.rt("notify").db.session() as session:
        assert accepted.status_code == 200, accepted.text
        contact = session.get(Contact, member)
        assert contact is not None and not contact.sms_enabled


# --- 3. list filters stay in scope ----------------------------------------------------------


def test_a_district_operator_searching_by_correlation_id_sees_only_its_district(
    backend: Any,
) -> None:
    admin = issue_token(backend, "admin", "city")
    operator = issue_token(backend, "operator", f"district:{HERE}")
    members = {d: notify_member(backend, d, p) for d, p in ((HERE, "13812348000"),
                                                            (THERE, "13812349000"))}  # fmt: skip
    staff = {district: staff_contact(backend, district) for district in (HERE, THERE)}
    correlation = uuid.uuid4()
    recipients = [Recipient.member(m) for m in members.values()]
    recipients += [Recipient.staff(s) for s in staff.values()]
    with backend.rt("notify").uow() as uow:
        for recipient in recipients:
            queue_message(uow, recipient=recipient, kind="wish_confirmed", subject="-",
                          slot="doors", params={"wish": "一套课外读物"},
                          correlation_id=correlation)  # fmt: skip
        uow.commit()
    query = {"correlation_id": str(correlation)}
    with client(operator) as http:
        seen = http.get("/api/v1/notifications", params=query)
    with client(admin) as http:
        everything = http.get("/api/v1/notifications", params=query)
    assert seen.status_code == 200, seen.text
    assert {m["member_id"] for m in seen.json()} == {str(members[HERE]), None}
    assert {m["to"] for m in seen.json()} == {"138****8000", f"139****{HERE[-4:]}"}
    assert len(everything.json()) == 4


# --- 4. paging is bounded -------------------------------------------------------------------


def test_paging_beyond_the_bounds_is_a_422_naming_the_parameter(backend: Any) -> None:
    with client(issue_token(backend, "admin", "city")) as http:
        for offset in ("99999999999999999999", "1000001", "-1"):
            refused = http.get("/api/v1/wishes", params={"offset": offset})
            assert refused.status_code == 422, (offset, refused.text)
            assert [e["field"] for e in refused.json()["errors"]] == ["offset"]
        assert http.get("/api/v1/wishes", params={"offset": 1_000_000}).json() == []
        for path in ("/api/v1/wishes", "/api/v1/registrations", "/api/v1/notifications"):
            refused = http.get(path, params={"limit": "99999999999999999999"})
            assert refused.status_code == 422, (path, refused.text)
            assert "limit" in [e["field"] for e in refused.json()["errors"]]


# --- 7. state files are the service user's only ---------------------------------------------


def test_what_a_command_creates_under_the_home_is_readable_by_its_user_only(
    tmp_path: Path,
) -> None:
    home = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVICEMONTH_")}
    env |= {"SERVICEMONTH_HOME": str(home), "SERVICEMONTH_LOG_LEVEL": "WARNING"}
    roster = tmp_path / "roster.csv"
    roster.write_text("姓名,身份证号,手机号,居住社区代码\n张三,110101199003077777,13812348000,x\n")
    for command in (
        ["migrate"],
        ["directory", "load", str(SAMPLE_DIRECTORY)],
        ["roster", "import", str(roster), "--unit", "U410303001"],  # seals: makes the key
        ["dead-letters", "list", "registration"],  # the embedded broker's folders
    ):
        subprocess.run(
            [sys.executable, "-m", "services.cli", *command],
            env=env,
            check=True,
            capture_output=True,
            preexec_fn=lambda: os.umask(0o022),  # a shell's usual umask
        )
    made = [home, *home.rglob("*")]
    kinds = {p.relative_to(home).parts[0] for p in made if p != home}
    assert {"registration.db", "keys", "broker"} <= kinds
    assert [p for p in made if p.stat().st_mode & 0o077] == []


# --- 5. uploads are bounded -----------------------------------------------------------------


ROSTER_HEADER = "姓名,身份证号,手机号,居住社区代码\n"


def bomb_xlsx(rows: int) -> bytes:
    """A tiny workbook whose one sheet inflates to ``rows`` rows (a zip bomb's shape)."""
    ns = "http://schemas.openxmlformats.org/"
    parts = {
        "[Content_Types].xml": f'<Types xmlns="{ns}package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
        'relationships+xml"/><Override PartName="/xl/workbook.xml" ContentType="'
        'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>',
        "_rels/.rels": f'<Relationships xmlns="{ns}package/2006/relationships">'
        f'<Relationship Id="rId1" Type="{ns}officeDocument/2006/relationships/'
        'officeDocument" Target="xl/workbook.xml"/></Relationships>',
        "xl/workbook.xml": f'<workbook xmlns="{ns}spreadsheetml/2006/main" xmlns:r="'
        f'{ns}officeDocument/2006/relationships"><sheets><sheet name="花名册" sheetId="1" '
        'r:id="rId1"/></sheets></workbook>',
        "xl/_rels/workbook.xml.rels": f'<Relationships xmlns="{ns}package/2006/'
        f'relationships"><Relationship Id="rId1" Type="{ns}officeDocument/2006/'
        'relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>',
    }
    row = "<row><c><v>1</v></c></row>"
    sheet = (
        f'<worksheet xmlns="{ns}spreadsheetml/2006/main"><sheetData>'
        + row * rows
        + "</sheetData></worksheet>"
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, text in parts.items():
            archive.writestr(name, text)
        archive.writestr("xl/worksheets/sheet1.xml", sheet)
    return out.getvalue()


def test_a_roster_over_the_row_cap_is_refused_whole_at_upload(backend: Any) -> None:
    load_sample_directory(backend)
    line = "张三,110101199003077777,13812348000,410303001001\n"
    big = (ROSTER_HEADER + line * 300_000).encode()
    bomb = bomb_xlsx(1_000_000)
    assert len(bomb) < 200_000
    with client(issue_token(backend, "admin", "city")) as http:
        for name, data in (("big.csv", big), ("bomb.xlsx", bomb)):
            started = time.monotonic()
            refused = http.post(
                "/api/v1/rosters",
                data={"unit_code": "U410303001"},
                files={"file": (name, data)},
            )
            assert time.monotonic() - started < 20
            assert refused.status_code == 422, refused.text
            (error,) = refused.json()["errors"]
            assert error["field"] == "file" and "250,000" in error["message"]
        assert stats(http, "registration")["members"] == 0
    with backend.rt("registration").db.session() as session:
        assert session.scalar(select(func.count()).select_from(Roster)) == 0


def test_a_roster_of_many_bad_rows_keeps_the_first_500_and_counts_them_all(
    backend: Any,
) -> None:
    load_sample_directory(backend)
    bad = "".join(f"张三{i},110101199003077777,138123,410303001001\n" for i in range(1200))
    with client(issue_token(backend, "admin", "city")) as http:
        uploaded = http.post(
            "/api/v1/rosters",
            data={"unit_code": "U410303001"},
            files={"file": ("bad.csv", (ROSTER_HEADER + bad).encode())},
        )
        assert uploaded.status_code == 202, uploaded.text
        roster_id = uploaded.json()["id"]
        tasks.import_roster(roster_id)
        result = http.get(f"/api/v1/rosters/{roster_id}").json()
        errors = http.get(f"/api/v1/rosters/{roster_id}/errors.xlsx")
    assert result["status"] == "done" and result["rejected"] == 1200
    assert result["errors_total"] == 1200 and result["errors_kept"] == 500
    assert {e["row"] for e in result["errors"]} <= set(range(2, 502))  # the first, in order
    sheet = load_workbook(io.BytesIO(errors.content), read_only=True).worksheets[0]
    assert sum(1 for _ in sheet.iter_rows()) == 1 + 500


# --- 2. the directory by district -----------------------------------------------------------

DIRECTORY_HEADER = "kind,code,name,parent_code,level,community_code,valid_to\n"


def directory_upload(http: Any, lines: list[str]) -> Any:
    body = (DIRECTORY_HEADER + "".join(f"{line}\n" for line in lines)).encode()
    return http.post("/api/v1/directory", files={"file": ("directory.csv", body)})


def test_a_district_operator_cannot_change_another_districts_directory_rows(
    backend: Any,
) -> None:
    load_sample_directory(backend)
    operator = issue_token(backend, "operator", f"district:{HERE}")
    own = "community,410303001001,王城社区（新）,410303001,,,"
    foreign = [
        "community,410305001001,长安路社区,410305001,,,2016-07-01",  # close it
        "unit,U410305001,涧西区示例中学（改）,410305,county,410305001001,",  # rename it
        "unit,U410300001,市直机关（改）,410300,city,410303001001,",  # a city-level unit
        "district,410303,西工区（改）,410300,,,",  # the district row itself is the city's
        "unit,U410305001,涧西区示例中学,410303,county,410303001001,",  # moved in
    ]
    with client(operator) as http:
        refused = directory_upload(http, [own, *foreign])
        assert refused.status_code == 403, refused.text
        assert [e["row"] for e in refused.json()["errors"]] == ["3", "4", "5", "6", "7"]
        loaded = directory_upload(http, [own])
    assert loaded.status_code == 200 and loaded.json()["changed"] == 1
    with backend.rt("registration").db.session() as session:
        community = session.get(Community, "410305001001")
        unit = session.get(Unit, "U410305001")
        assert community is not None and community.valid_to is None
        assert unit is not None and (unit.name, unit.district_code) == ("涧西区示例中学", THERE)
        changed = {c.code for c in session.scalars(select(DirectoryChange))}
        assert changed == {"410303001001"}
    with client(issue_token(backend, "admin", "city")) as http:
        assert directory_upload(http, foreign[:2]).json()["changed"] == 2
