"""Unit rosters (花名册) through the CLI and the HTTP contract, on both backends: every good
row lands, every bad row comes back with its row number, field and reason, and importing
the same file again adds nothing."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import re
import subprocess
import sys
import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import xlwt  # type: ignore[import-untyped]
from click.testing import CliRunner
from openpyxl import Workbook, load_workbook
from sqlalchemy import select

from services.cli import cli
from services.registration import roster_writer, tasks
from services.registration import rosters as rosters_module
from services.registration.enrolment import Directory, add_members, validate_member
from services.registration.models import CommunityRegistration, Member, Roster
from services.registration.rosters import COLUMNS, FILE_CONTEXT, import_roster
from services.registration.rules import check_character
from shared.db import outbox_table
from shared.events import MemberRegistered, SealedContact, parse
from tests.support import client, issue_token, load_sample_directory, stats

UNIT = "U410300001"  # city-level unit in 410303 with a contact community in 410305
HEADERS = [header for _, header in COLUMNS]
ROOT = Path(__file__).resolve().parents[2]


def id_number(born: date, seq: int, region: str = "410303") -> str:
    body = f"{region}{born:%Y%m%d}{seq:03d}"
    return body + check_character(body)


def good_row(i: int) -> list[str]:
    born = date(1960, 1, 1) + timedelta(days=i % 12_000)
    name = "王李张刘陈"[i % 5] + "建国秀英志强丽华"[i % 8] + "海燕文博"[i % 4]
    return [
        name,
        id_number(born, i // 12_000),
        f"138{i:08d}",
        f"m{i}@example.cn" if i % 3 == 0 else "",
        ["410303001001", "410305001002", "410303002001"][i % 3],
        "医疗护理、法律咨询" if i % 2 else "",
        "是" if i % 50 == 0 else "否",
    ]


def spoil(row: list[str], kind: int) -> tuple[list[str], str]:
    """Make one field of ``row`` wrong, in one of five ways; return the row and the field."""
    row = list(row)
    if kind == 0:  # bad check digit
        row[1] = row[1][:17] + ("1" if row[1][17] != "1" else "2")
        return row, "id_number"
    if kind == 1:  # under 18
        row[1] = id_number(date.today() - timedelta(days=365 * 10), 7)
        return row, "id_number"
    if kind == 2:
        row[4] = "410303009009"  # no such community
        return row, "residence_community_code"
    if kind == 3:
        row[2] = row[2] + "9"  # 12 digits
        return row, "phone"
    row[0] = row[0] + "3"  # digits in a name
    return row, "name"


def roster(n: int, offset: int = 0) -> tuple[list[list[str]], dict[int, str], int]:
    """``n`` rows: one in 250 bad (five kinds), one in 2500 repeating an earlier ID number.

    Returns the rows, the bad ones as {spreadsheet row: field}, and how many rows are good
    (a repeat is good: it is a duplicate, not an error).
    """
    rows, bad = [], {}
    for i in range(n):
        row = good_row(offset + i)
        if i % 250 == 17:
            row, bad[i + 2] = spoil(row, (i // 250) % 5)
        elif i % 2500 == 1234:
            row[1] = rows[i - 1000][1]  # the same person twice in one file
        rows.append(row)
    return rows, bad, n - len(bad)


def csv_file(rows: list[list[str]], headers: list[str] = HEADERS, encoding: str = "gbk") -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows([headers, *rows])
    return out.getvalue().encode(encoding)


def xlsx(rows: list[list[str]], headers: list[str] = HEADERS) -> bytes:
    book = Workbook(write_only=True)
    sheet = book.create_sheet("花名册")
    for row in [headers, *rows]:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def xls(rows: list[list[Any]], headers: list[str] = HEADERS) -> bytes:
    """The roster as an Excel 97–2003 workbook (.xls), as old offices still save it."""
    book = xlwt.Workbook(encoding="utf-8")
    sheet = book.add_sheet("花名册")
    for r, row in enumerate([headers, *rows]):
        for c, value in enumerate(row):
            sheet.write(r, c, value)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def upload(http: Any, data: bytes, name: str, unit: str = UNIT) -> Any:
    return http.post("/api/v1/rosters", data={"unit_code": unit}, files={"file": (name, data)})


def imported(http: Any, data: bytes, name: str) -> dict[str, Any]:
    """Upload over HTTP, run the import task's body here, and read the result over HTTP."""
    response = upload(http, data, name)
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "running"
    tasks.import_roster(response.json()["id"])
    result: dict[str, Any] = http.get(f"/api/v1/rosters/{response.json()['id']}").json()
    return result


@pytest.fixture
def admin(backend: Any) -> str:
    load_sample_directory(backend)
    return issue_token(backend, "admin", "city")


@pytest.mark.parametrize("kind", ["gbk-csv", "xlsx"])
def test_a_10000_row_roster_lands_every_good_row_and_reports_every_bad_one(
    backend: Any, admin: str, tmp_path: Path, kind: str
) -> None:
    rows, bad, good = roster(10_000)
    repeats = 10_000 // 2500  # the same person twice in the file: the second is a duplicate
    path = tmp_path / ("roster.xlsx" if kind == "xlsx" else "roster.csv")
    path.write_bytes(xlsx(rows) if kind == "xlsx" else csv_file(rows))
    first = CliRunner().invoke(cli, ["roster", "import", str(path), "--unit", UNIT])
    again = CliRunner().invoke(cli, ["roster", "import", str(path), "--unit", UNIT])

    assert first.exit_code == 0, first.output
    assert f"{good - repeats} accepted, {len(bad)} rejected, {repeats} duplicates" in first.output
    assert re.search(r"row 19: id_number: check character", first.output)
    assert again.exit_code == 0, again.output
    assert f"0 accepted, {len(bad)} rejected, {good} duplicates" in again.output
    roster_id = re.findall(r"roster ([0-9a-f-]{36})", first.output)[0]
    with client(admin) as http:
        result = http.get(f"/api/v1/rosters/{roster_id}").json()
        assert stats(http, "registration")["members"] == good - repeats
    assert result["status"] == "done"
    assert {(e["row"], e["field"]) for e in result["errors"]} == set(bad.items())
    assert len(result["errors"]) == len(bad) == 40


def test_a_unit_gets_its_bad_rows_back_fixes_them_and_uploads_them_again(
    backend: Any, admin: str
) -> None:
    rows, bad, good = roster(600, offset=50_000)
    unit = issue_token(backend, "unit", f"unit:{UNIT}")
    with client(unit) as http:
        first = imported(http, xlsx(rows), "花名册.xlsx")
        download = http.get(f"/api/v1/rosters/{first['id']}/errors.xlsx")
        sheet = load_workbook(io.BytesIO(download.content))
        cells = sheet.active.iter_rows(values_only=True)  # type: ignore[union-attr]
        table = [[v or "" for v in row] for row in cells]
        # The unit corrects each row and uploads the same sheet; 错误原因 is ignored.
        corrected = [[*good_row(90_000 + n), row[-1]] for n, row in enumerate(table[1:])]
        refixed = imported(http, xlsx(corrected, table[0]), "errors-fixed.xlsx")
        again = imported(http, xlsx(rows), "花名册.xlsx")

    assert (first["status"], first["accepted"], first["rejected"]) == ("done", good, len(bad))
    assert {(e["row"], e["field"]) for e in first["errors"]} == set(bad.items())
    assert sheet.active.freeze_panes == "A2"  # type: ignore[union-attr]
    assert table[0] == [*HEADERS, "错误原因"]
    assert [r[:-1] for r in table[1:]] == [rows[n - 2] for n in sorted(bad)]
    assert all(r[-1].startswith(f"第{n}行") for r, n in zip(table[1:], sorted(bad), strict=True))
    assert "身份证号：check character does not match" in table[1][-1]
    assert (refixed["accepted"], refixed["rejected"]) == (len(bad), 0)
    assert (again["accepted"], again["rejected"], again["duplicates"]) == (0, len(bad), good)


def test_csv_in_gbk_utf8_with_bom_and_english_headers_all_import(backend: Any, admin: str) -> None:
    english = ["name", "id_number", "phone", "email", "residence_community_code", "skills",
               "is_leader_cadre"]  # fmt: skip
    other_chinese = ["姓名", "公民身份号码", "手机号码", "邮箱", "居住社区", "专长",
                     "是否县处级以上领导干部"]  # fmt: skip
    files = [
        ("gbk.csv", csv_file([good_row(i) for i in range(60_000, 60_020)])),
        ("bom.csv", csv_file([good_row(i) for i in range(61_000, 61_020)], encoding="utf-8-sig")),
        ("other.csv", csv_file([good_row(i) for i in range(62_000, 62_020)], other_chinese)),
        ("english.csv", csv_file([good_row(i) for i in range(63_000, 63_020)], english)),
    ]
    with client(admin) as http:
        results = [imported(http, data, name) for name, data in files]
        members = stats(http, "registration")["members"]

    assert [(r["status"], r["accepted"], r["rejected"]) for r in results] == [("done", 20, 0)] * 4
    assert members == 80


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
def test_rosters_are_seen_only_in_scope_and_bad_files_are_refused(backend: Any, admin: str) -> None:
    data = csv_file([good_row(i) for i in range(70_000, 70_005)])
    other_unit = issue_token(backend, "unit", "unit:U410305001")
    other_district = issue_token(backend, "operator", "district:410305")
    city_operator = issue_token(backend, "operator", "district:410300")
    community = issue_token(backend, "community", "community:410303001001")
    with client(admin) as http:
        roster_id = imported(http, data, "r.csv")["id"]
        missing = upload(http, csv_file([], HEADERS[:1] + HEADERS[2:]), "no-id.csv")
        broken = upload(http, b"PK\x03\x04 not really a workbook", "broken.xlsx")
        unknown = upload(http, data, "r.csv", unit="U999")
    paths = [f"/api/v1/rosters/{roster_id}", f"/api/v1/rosters/{roster_id}/errors.xlsx"]
    codes = {}
    for name, token in [("unit", other_unit), ("district", other_district),
                        ("city", city_operator), ("community", community)]:  # fmt: skip
        with client(token) as http:
            codes[name] = [http.get(p).status_code for p in paths]
            codes[name].append(upload(http, data, "r.csv").status_code)

    assert codes == {
        "unit": [404, 404, 404],
        "district": [404, 404, 404],
        "city": [200, 200, 202],
        "community": [403, 403, 403],
    }
    assert missing.status_code == 422
    assert missing.json()["errors"] == [
        {"field": "id_number", "message": "no 身份证号 (id_number) column"}
    ]
    assert broken.status_code == 422 and "cannot be read" in broken.json()["detail"]
    assert unknown.status_code == 404


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
def test_a_stored_roster_that_cannot_be_read_fails_with_the_reason(
    backend: Any, admin: str
) -> None:
    rt = backend.rt("registration")
    garbage = base64.b64encode(b"PK\x03\x04 cut short").decode()
    with rt.uow() as uow:
        roster = Roster(
            id=uuid.uuid4(), unit_code=UNIT, filename="cut.xlsx", content_sha256="0" * 64,
            content=rt.sealer.seal(garbage, FILE_CONTEXT).encode(), created_at=uow.now(),
        )  # fmt: skip
        uow.session.add(roster)
        uow.commit()

    assert tasks.import_roster(str(roster.id)) == "failed"
    with client(admin) as http:
        result = http.get(f"/api/v1/rosters/{roster.id}").json()
    assert result["status"] == "failed" and "cannot be read" in result["detail"]
    with rt.uow() as uow:
        assert uow.session.get(Roster, roster.id).content is None  # type: ignore[union-attr]


def test_a_roster_cut_short_is_finished_by_a_redelivered_task(backend: Any, admin: str) -> None:
    rows, bad, good = roster(300, offset=80_000)
    rt = backend.rt("registration")
    with client(admin) as http:
        roster_id = upload(http, csv_file(rows), "r.csv").json()["id"]

        def crash(_rows: int) -> None:
            raise SystemExit("the worker dies after its first chunk")

        with pytest.raises(SystemExit):
            import_roster(uuid.UUID(roster_id), rt.uow, rt.sealer, crash, chunk=100)
        halfway = http.get(f"/api/v1/rosters/{roster_id}").json()
        tasks.import_roster(roster_id)  # acks_late: the task comes again
        tasks.import_roster(roster_id)  # and once more, after it finished
        done = http.get(f"/api/v1/rosters/{roster_id}").json()
        members = stats(http, "registration")["members"]
    with rt.uow() as uow:
        content = uow.session.get(Roster, uuid.UUID(roster_id)).content  # type: ignore[union-attr]

    assert (halfway["status"], halfway["total"]) == ("running", 100)
    assert (done["status"], done["total"], done["accepted"]) == ("done", 300, good)
    assert (done["rejected"], len(done["errors"])) == (len(bad), len(bad))
    assert members == good
    assert content is None  # the upload is dropped once imported


def test_an_uploaded_roster_is_imported_by_the_registration_worker(
    backend: Any, admin: str
) -> None:
    rows, bad, good = roster(300, offset=85_000)
    worker = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "worker", "registration", "--pool", "solo"],
        env={**os.environ, **backend.env},
        cwd=ROOT,
    )
    try:
        with client(admin) as http:
            roster_id = upload(http, xlsx(rows), "r.xlsx").json()["id"]
            deadline = time.monotonic() + 100  # a worker starting on a busy machine is slow
            result = http.get(f"/api/v1/rosters/{roster_id}").json()
            while result["status"] == "running" and time.monotonic() < deadline:
                time.sleep(0.3)
                result = http.get(f"/api/v1/rosters/{roster_id}").json()
    finally:
        worker.kill()  # its work is done or failed; a warm shutdown only costs seconds here
        worker.wait()

    assert (result["status"], result["accepted"], result["rejected"]) == ("done", good, len(bad))


def as_typed(offset: int) -> tuple[list[list[Any]], dict[int, tuple[list[str], list[str]]]]:
    """A roster as units really fill it in: free-text 专长, full-width digits, +86 and dashed
    phones, a lower-case x, a full-width community code, one phone typed as a number (kept
    as text in a CSV); and one bad row (a 12-digit phone). Returns the rows and, per
    spreadsheet row, the skills and own words the member should get."""
    ends_in_x = next(
        i for i in (id_number(date(1970, 3, 3), n) for n in range(300))
        if i.endswith("X")
    )  # fmt: skip
    typed: list[tuple[str, Any, str, tuple[list[str], list[str]]]] = [
        ("法律、教育", "13800138000", "", (["法律咨询", "教育辅导"], [])),
        ("维修", "+86 138 0013 8001", "", (["家电维修", "水电维修"], [])),
        ("唱歌跳舞", "138-0013-8002", "", (["文艺演出"], [])),
        ("会修电脑", "１３８００１３８００３", "", (["信息技术"], [])),
        ("摄影", "0086-13800138004", "", ([], ["摄影"])),
        ("医疗护理，摄影 钓鱼", "+8613800138005", "", (["医疗护理"], ["摄影", "钓鱼"])),
        ("", 13800138006, "４１０３０５００１００２", ([], [])),
        ("律师/书法", "（+86）138 0013 8007", "x", (["法律咨询", "书法绘画"], [])),
        ("养老", "1380013800899", "", ([], [])),  # 13 digits: rejected
    ]
    rows: list[list[Any]] = []
    expected: dict[int, tuple[list[str], list[str]]] = {}
    for n, (skills, phone, special, got) in enumerate(typed):
        row: list[Any] = good_row(offset + n)
        row[2], row[5] = phone, skills
        if special.startswith("４"):
            row[4] = special
        if special == "x":
            row[1] = ends_in_x[:17] + "x"
        if n == 3:  # the ID number in full-width digits too
            row[1] = row[1].translate({ord(d): 0xFF10 + int(d) for d in "0123456789"})
        rows.append(row)
        expected[n + 2] = got
    del expected[len(typed) + 1]  # the bad row lands no member
    return rows, expected


@pytest.mark.parametrize("kind", ["xlsx", "xls", "gbk-csv"])
def test_a_roster_as_people_type_it_lands_every_good_row_with_skills_mapped_and_notes(
    backend: Any, admin: str, kind: str
) -> None:
    rows, expected = as_typed(offset=95_000)
    if kind == "xlsx":
        data = xlsx(rows)
    elif kind == "xls":
        data = xls(rows)
    else:
        data = csv_file([[str(v) for v in row] for row in rows])
    with client(admin) as http:
        result = imported(http, data, f"花名册.{kind.split('-')[-1]}")
        with backend.rt("registration").uow() as uow:
            query = select(Member.id).where(Member.roster_id == uuid.UUID(result["id"]))
            ids = list(uow.session.scalars(query))
        members = [http.get(f"/api/v1/members/{i}").json() for i in ids]

    assert (result["status"], result["total"], result["accepted"]) == ("done", 9, 8)
    assert (result["rejected"], result["duplicates"]) == (1, 0)
    assert [(e["row"], e["field"]) for e in result["errors"]] == [(10, "phone")]
    assert (result["notes_total"], result["notes_kept"]) == (2, 2)
    assert result["notes"] == [
        {"row": 6, "field": "skills",
         "message": "not in the skills list, kept as own words: 摄影"},
        {"row": 7, "field": "skills",
         "message": "not in the skills list, kept as own words: 摄影、钓鱼"},
    ]  # fmt: skip
    got = sorted((m["phone"], m["skills"], m["skills_other"]) for m in members)
    assert got == [(f"138****{8000 + n}", *expected[n + 2]) for n in range(8)]
    assert {m["residence_community_code"] for m in members} == {
        "410303001001", "410305001002", "410303002001"
    }  # fmt: skip
    by_phone = {m["phone"]: m["id_number"] for m in members}
    assert rows[7][1].endswith("x")
    assert by_phone["138****8007"] == "410***********" + rows[7][1][-4:].upper()


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
def test_the_consume_sweep_queues_again_only_a_roster_whose_task_was_lost(
    backend: Any, admin: str
) -> None:
    from services.registration import consumers
    from services.registration.bootstrap import bootstrap
    from services.registration.commands import ResendStuckRosters

    rt = backend.rt("registration")
    content = rt.sealer.seal(base64.b64encode(b"x").decode(), FILE_CONTEXT).encode()
    with rt.uow() as uow:
        for minutes in (31, 5):  # lost an hour ago, and still on its way
            uow.session.add(
                Roster(
                    id=uuid.uuid4(), unit_code=UNIT, filename="r.csv", content_sha256="0" * 64,
                    content=content, created_at=uow.now() - timedelta(minutes=minutes),
                )
            )  # fmt: skip
        uow.commit()

    assert bootstrap(runtime=rt).handle(ResendStuckRosters()) == 1
    consumers.periodic(rt)  # what the consume process runs: the same sweep, nothing returned


def import_here(rt: Any, data: bytes) -> rosters_module.Summary:
    """Keep ``data`` as a roster of UNIT and import it in this process."""
    with rt.uow() as uow:
        unit = rosters_module.unit_for(uow, UNIT)
        roster_id = rosters_module.create_roster(uow, unit, "r.csv", data, rt.sealer).id
        uow.commit()
    return import_roster(roster_id, rt.uow, rt.sealer)


def test_a_member_registered_meanwhile_is_a_duplicate_not_a_failure(
    backend: Any, admin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [good_row(i) for i in range(75_000, 75_005)]
    rt = backend.rt("registration")
    first = import_here(rt, csv_file(rows[2:3]))
    looked_up = rosters_module._registered
    calls: list[int] = []

    def stale(session: Any, digests: list[str]) -> Any:
        """The first look-up misses the member the other import has just committed."""
        calls.append(len(digests))
        return {} if len(calls) == 1 else looked_up(session, digests)

    monkeypatch.setattr(rosters_module, "_registered", stale)
    second = import_here(rt, csv_file(rows))

    assert (first.accepted, first.duplicates) == (1, 0)
    assert len(calls) == 2  # the chunk's write was refused (unique HMAC), then sorted again
    assert (second.status, second.accepted, second.duplicates) == ("done", 4, 1)
    with rt.read() as uow:
        assert len(list(uow.session.scalars(select(Member.id)))) == 5


def test_a_roster_lands_what_registering_the_same_member_one_by_one_lands(
    backend: Any, admin: str
) -> None:
    """The roster's bulk writer (COPY on PostgreSQL) against ``add_members``, the API's
    path, for the same member: the same columns, registrations and events, but for ids,
    timestamps and the random nonce of sealed values."""
    rt = backend.rt("registration")
    raw = dict(zip([f for f, _ in COLUMNS], good_row(77_001), strict=True))
    raw |= {"email": "w@example.cn", "skills": "医疗护理、摄影", "unit_code": UNIT,
            "availability": ["weekend"], "is_leader_cadre": True}  # fmt: skip
    roster_id = uuid.uuid4()
    landed = []
    for way in ("one by one", "roster"):
        with rt.uow() as uow:
            directory = Directory(uow.session, preload=True)
            values, errors = validate_member(raw, directory, uow.now().date(), need_consent=False)
            assert values is not None, errors
            if way == "roster":
                digest = rt.sealer.digest(values.id_number)
                landing = roster_writer.rows_for([(values, digest)], uow, rt.sealer, directory,
                                                 roster_id)  # fmt: skip
                roster_writer.write(uow, landing)
            else:
                add_members([values], uow, rt.sealer, directory, roster_id)
            landed.append(what_landed(uow, rt.sealer))
            # rolled back: the same person lands both ways

    assert landed[0] == landed[1]
    member, registrations, events = landed[1]
    assert member["skills"] == ["医疗护理"] and member["skills_other"] == ["摄影"]
    assert len(registrations) == 3 and len(events) == 2  # 410303 and 410305


def what_landed(uow: Any, sealer: Any) -> tuple[dict[str, Any], list[Any], list[Any]]:
    """The one member in the transaction, its registrations and its outbox rows, with ids,
    timestamps and nonces taken out (sealed values opened; events parsed by the catalogue,
    as consumers check them)."""
    member = dict(uow.session.execute(select(Member.__table__)).mappings().one())
    member_id = member.pop("id")
    for column in ("id_number_sealed", "phone_sealed", "email_sealed"):
        member[column] = sealer.open(member[column], column.removesuffix("_sealed"))
    for column in ("created_at", "consented_at"):
        assert member.pop(column) is not None
    table = CommunityRegistration.__table__
    found = uow.session.execute(select(table).order_by(table.c.role)).mappings().all()
    assert {r["member_id"] for r in found} == {member_id}
    registrations = [(r["role"], r["community_code"], r["district_code"], r["state"])
                     for r in found]  # fmt: skip
    ids = {str(r["id"]): r["role"] for r in found}
    outbox = outbox_table(uow.db.metadata)
    query = select(outbox.c.routing_key, outbox.c.body).where(
        outbox.c.routing_key.like("%.member.registered")
    )
    events = []
    for key, body in uow.session.execute(query.order_by(outbox.c.position)).tuples():
        envelope, event = parse(body)
        assert isinstance(event, MemberRegistered) and event.member_id == member_id
        assert envelope.occurred_at is not None
        payload = json.loads(body)["payload"]
        payload.pop("member_id")
        payload["contact"]["sealed"] = SealedContact.open(sealer, payload["contact"]["sealed"])
        for ref in payload["communities"]:
            ref["registration_id"] = ids[ref["registration_id"]]
        events.append((key, envelope.district, envelope.producer, envelope.campaign, payload))
    return member, registrations, events
