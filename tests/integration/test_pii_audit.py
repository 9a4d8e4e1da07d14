"""Every read of personal data in clear leaves an audit row naming who (the token's subject,
id, role and scope), what, and when: a member read with ``?unmasked=true`` and a roster's
``errors.xlsx`` (the rejected rows as typed). Reads refused leave none."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

from click.testing import CliRunner
from sqlalchemy import select

from services.cli import cli
from services.demo_data import roster_xlsx
from services.pii_scan import Found, Scan, scan_bytes
from services.registration.models import AuditEntry
from shared import tokens
from tests import support


def signed(backend: Any, subject: str, role: str, scope: str) -> tuple[str, str]:
    """A token and its id (jti)."""
    token, claims = tokens.sign(
        backend.settings, subject=subject, role=role, scope=scope, ttl=timedelta(hours=1)
    )
    return token, claims.jti


def audit(backend: Any) -> list[AuditEntry]:
    with backend.rt("registration").db.session() as session:
        return list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def in_clear(content: bytes) -> list[tuple[str, str, str]]:
    found = Found("download")
    scan_bytes(content, "download", found, Scan())
    return found.items


def test_a_member_read_unmasked_is_audited_with_who_what_and_when(backend: Any) -> None:
    support.load_sample_directory(backend)
    body = support.member_body(11)
    with support.client(support.issue_token(backend, "admin", "city")) as admin:
        created = admin.post("/api/v1/members", json=body)
        assert created.status_code == 201, created.text
    member_id = created.json()["id"]
    path = f"/api/v1/members/{member_id}"

    token, jti = signed(backend, "staff:7d0c6a56-0000-4000-8000-000000000001", "admin", "city")
    clock = backend.rt("registration").clock
    before = clock.now()
    with support.client(token) as http:
        masked = http.get(path)
        assert masked.status_code == 200 and "*" in masked.json()["phone"]
        read = http.get(path, params={"unmasked": "true"})
    after = clock.now()
    assert read.status_code == 200, read.text
    assert read.json()["phone"] == body["phone"] and "*" not in read.json()["id_number"]

    (row,) = audit(backend)  # the masked read leaves none
    assert (row.subject, row.token_id, row.role, row.scope) == (
        "staff:7d0c6a56-0000-4000-8000-000000000001",
        jti,
        "admin",
        "city",
    )
    assert row.action == "read_unmasked" and str(row.member_id) == member_id
    assert before <= row.at <= after

    # refused (a community's staff may not unmask): nothing read, nothing audited
    worker, _ = signed(backend, "staff:x", "community", "community:410303001001")
    with support.client(worker) as http:
        assert http.get(path, params={"unmasked": "true"}).status_code in (403, 404)
    assert len(audit(backend)) == 1


def test_a_rosters_rejected_rows_download_is_audited_with_who_what_and_when(
    backend: Any, tmp_path: Any
) -> None:
    support.load_sample_directory(backend)
    roster = tmp_path / "roster.xlsx"
    roster.write_bytes(roster_xlsx(70))  # the demo's planted mistakes, one an under-18 ID
    imported = CliRunner().invoke(cli, ["roster", "import", str(roster), "--unit", "U410303001"])
    assert imported.exit_code == 0, imported.output
    roster_id = re.search(r"\(roster ([0-9a-f-]{36})\)", imported.output)
    assert roster_id is not None
    path = f"/api/v1/rosters/{roster_id[1]}/errors.xlsx"

    # out of scope: 404, nothing audited
    other, _ = signed(backend, "staff:y", "unit", "unit:U410305001")
    with support.client(other) as http:
        assert http.get(path).status_code == 404
    assert audit(backend) == []

    token, jti = signed(backend, f"staff:{uuid.uuid4()}", "unit", "unit:U410303001")
    clock = backend.rt("registration").clock
    before = clock.now()
    with support.client(token) as http:
        got = http.get(path)
    after = clock.now()
    assert got.status_code == 200, got.text
    assert in_clear(got.content), "the rows as typed: personal data in clear"

    (row,) = audit(backend)
    assert row.subject is not None and row.subject.startswith("staff:")
    assert (row.token_id, row.role, row.scope) == (jti, "unit", "unit:U410303001")
    assert row.action == "roster_errors_export" and roster_id[1] in (row.detail or "")
    assert before <= row.at <= after
