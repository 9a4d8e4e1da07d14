"""``servicemonth pii-scan`` finds ID numbers and mobiles in clear, reports them masked, and
leaves alone what only looks like them."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import sqlite3
import uuid
from email.message import EmailMessage
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import Workbook
from PIL import Image, PngImagePlugin
from sqlalchemy import create_engine

from services.pii_scan import find_encoded, pii_scan, run
from services.registration.rules import check_character
from shared.config import settings
from shared.pii import Sealer, mask_id_number, mask_phone

BODY = "41030319800101001"
ID_NUMBER = BODY + check_character(BODY)
WRONG_CHECK = BODY + next(c for c in "0123456789X" if c != check_character(BODY))
PHONE = "13812348000"
ID_MASKED, PHONE_MASKED = mask_id_number(ID_NUMBER), mask_phone(PHONE)


def found(text: str) -> list[tuple[str, str]]:
    return list(find_encoded(text))


@pytest.mark.parametrize(
    "text",
    [
        f'{{"event": "member registered", "id_number": "{ID_NUMBER}"}}',
        f"证件号：{ID_NUMBER}。",
        ID_NUMBER[:-1] + "x" if check_character(BODY) == "X" else ID_NUMBER,
        "身份证 410303800101001 （旧）",  # 15 digits: a real region and birth date
        f"电话{PHONE}，请回电",
        "+86 138-1234-8000",
        "１３８１２３４８０００",  # full-width digits, as an input method types them
        base64.b64encode(json.dumps({"phone": PHONE}).encode()).decode(),  # a broker body
    ],
)
def test_personal_data_in_clear_is_found(text: str) -> None:
    assert found(text), text


@pytest.mark.parametrize(
    "text",
    [
        ID_MASKED,
        PHONE_MASKED,
        WRONG_CHECK,  # 18 digits with the wrong check character: a random number
        "6993ad8e-371d-46a9-b9d6-8d395e3780c4",  # a UUID, fixed (both workers collect it)
        "6afe613dea704c32a1cd39432b84604b",
        hashlib.sha256(PHONE.encode()).hexdigest(),
        "2026-12-06T23:08:00.123456+00:00",
        "1765000000123",  # an epoch in milliseconds
        "1765000000123456789",  # and in nanoseconds
        f"{PHONE}123",  # inside a longer run of digits
        f"a{PHONE}",
        f"0.{PHONE}",  # the decimals of a number
        "12012348000",  # not a mobile prefix
        "410399201613010010",  # month 13
        "roster 01796598562673626380_3bdb9d7250ab4b96b4257935cdea462b.msg",
    ],
)
def test_what_only_looks_like_personal_data_is_not(text: str) -> None:
    assert not found(text), text


def test_sealed_values_are_not_personal_data_in_clear() -> None:
    sealer = Sealer(bytes(range(32)))
    for value in (ID_NUMBER, PHONE, json.dumps({"phone": PHONE, "id": ID_NUMBER})):
        for _ in range(50):
            assert not found(sealer.seal(value, "phone"))
    assert not found(sealer.digest(PHONE))


def test_the_masks_are_what_is_reported() -> None:
    assert found(f"{ID_NUMBER} {PHONE}") == [("ID number", ID_MASKED), ("mobile", PHONE_MASKED)]


# --- places --------------------------------------------------------------------------------


def xlsx(*rows: list[str]) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def plant(home: Path) -> dict[str, str]:
    """A file of each kind under ``home``, each with one value in clear: where → what."""
    (home / "logs").mkdir(parents=True)
    (home / "logs" / "consume.log").write_text(
        json.dumps({"event": "applied", "at": "2026-12-06T23:08:00Z", "id": str(uuid.uuid4())})
        + "\n"
        + json.dumps({"event": "oops", "phone": PHONE})
        + "\n",
        encoding="utf-8",
    )
    (home / "reports").mkdir()
    (home / "reports" / "report.xlsx").write_bytes(
        xlsx(["姓名", "证件号"], ["张三", ID_MASKED], ["李四", ID_NUMBER])
    )
    (home / "reports" / "report.html.gz").write_bytes(gzip.compress(f"<td>{PHONE}</td>".encode()))
    chart = io.BytesIO()
    info = PngImagePlugin.PngInfo()
    info.add_text("Title", f"members {PHONE}")
    Image.new("RGB", (4, 4)).save(chart, "PNG", pnginfo=info)
    (home / "reports" / "chart.png").write_bytes(chart.getvalue())
    (home / "outbox" / "email").mkdir(parents=True)
    mail = EmailMessage()
    mail["To"] = "z***@example.com"
    mail.set_content(f"请联系 {PHONE}", charset="utf-8", cte="base64")
    mail.add_attachment(
        xlsx([ID_NUMBER]),
        maintype="application",
        subtype="vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        filename="report.xlsx",
    )
    (home / "outbox" / "email" / "x.eml").write_bytes(mail.as_bytes())
    queue = home / "broker" / "queues" / "servicemonth.t.notify.events"
    queue.mkdir(parents=True)
    payload = json.dumps({"payload": {"id_number": ID_NUMBER}}).encode()
    message = {"body": base64.b64encode(payload).decode(), "properties": {}}
    (queue / "1_a.msg").write_text(json.dumps(message), encoding="utf-8")
    with sqlite3.connect(home / "other.db") as db:
        db.execute("create table t (id integer primary key, note text, content blob)")
        db.execute("insert into t (note, content) values (?, ?)", (f"tel {PHONE}", b""))
        db.execute("insert into t (note, content) values (?, ?)", ("fine", xlsx([ID_NUMBER])))
    db.close()
    return {
        "logs/consume.log line 2": "mobile",
        "report.xlsx:xl/worksheets/sheet1.xml": "ID number",
        "report.html.gz line 1": "mobile",
        "chart.png text chunk 1": "mobile",
        "x.eml part 2": "mobile",
        "x.eml part 3 (report.xlsx):xl/worksheets/sheet1.xml": "ID number",
        "1_a.msg line 1": "ID number",
        "other.db: table t": "mobile",
        "content, row 2 (2):xl/worksheets/sheet1.xml": "ID number",
    }


def test_every_kind_of_place_is_read(tmp_path: Path) -> None:
    home = tmp_path / "var"
    planted = plant(home)
    scan = run([home])
    items = [(f.place, where, kind, masked) for f in scan.found for where, kind, masked in f.items]
    for where, kind in planted.items():
        assert any(where in f"{place} {at}" and k == kind for place, at, k, _ in items), (
            f"{where}: {items}"
        )
    assert len(items) == len(planted), items
    assert {masked for *_, masked in items} == {ID_MASKED, PHONE_MASKED}


def test_a_database_row_is_read(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'service.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("create table outbox (id integer primary key, body json)")
        body = json.dumps({"type": "member.registered", "payload": {"phone": PHONE}})
        conn.exec_driver_sql("insert into outbox (body) values (?)", (body,))
    scan = run([tmp_path], {"registration": engine})
    assert [f.place for f in scan.found] == ["registration database: table outbox"]
    assert scan.found[0].items == [("body, row 1 (1)", "mobile", PHONE_MASKED)]


def test_the_command_reports_masked_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "var"
    plant(home)
    monkeypatch.setenv("SERVICEMONTH_HOME", str(home))
    settings.cache_clear()
    try:
        done = CliRunner().invoke(pii_scan, ["--no-databases", "--show", "50"])
    finally:
        settings.cache_clear()
    assert done.exit_code == 1, done.output
    assert ID_NUMBER not in done.output and PHONE not in done.output
    assert ID_MASKED in done.output and PHONE_MASKED in done.output
    assert "total: 4 ID numbers, 5 mobiles in clear" in done.output


def test_a_clean_home_exits_0(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "var"
    (home / "logs").mkdir(parents=True)
    sealer = Sealer(bytes(range(32)))
    lines = [
        json.dumps(
            {"id": str(uuid.uuid4()), "phone": PHONE_MASKED, "sealed": sealer.seal(PHONE, "p")}
        )
        for _ in range(100)
    ]
    (home / "logs" / "a.log").write_text("\n".join(lines), encoding="utf-8")
    (home / "export.xlsx").write_bytes(xlsx(["姓名", "手机号"], ["张*", PHONE_MASKED]))
    monkeypatch.setenv("SERVICEMONTH_HOME", str(home))
    settings.cache_clear()
    try:
        done = CliRunner().invoke(pii_scan, ["--no-databases"])
    finally:
        settings.cache_clear()
    assert done.exit_code == 0, done.output
    assert "total: 0 ID numbers, 0 mobiles in clear" in done.output
