"""After a month on either backend, ``servicemonth pii-scan`` finds no ID number or mobile in
clear: not in the logs, the reports, the roster's rejected rows, the outbox, the broker's
folders, the events, nor any table of any service."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from services.cli import cli
from services.demo_data import roster_xlsx
from services.operations import broker_status
from services.reporting import runs
from shared import logs
from shared.clock import SimulatedClock
from tests import support
from tests.integration.notify_support import dispatched, drain, file_sender
from tests.integration.reporting_support import (  # noqa: F401 (admin, clock: fixtures)
    admin,
    clock,
    deliver_to_reporting,
    first_half,
)


def scan() -> Any:
    return CliRunner().invoke(cli, ["pii-scan", "--show", "20"])


@pytest.mark.long
@pytest.mark.timeout(300)  # half a month through every service: about a minute, more when busy
def test_a_month_leaves_no_personal_data_in_clear(
    backend: Any, admin: Any, clock: SimulatedClock
) -> None:
    home: Path = backend.settings.home
    (home / "logs").mkdir(parents=True, exist_ok=True)
    log = (home / "logs" / "servicemonth.log").open("w", encoding="utf-8")
    level = logging.getLogger().level
    logs.configure(backend.settings, stream=log, force=True)
    logging.getLogger().setLevel(logging.DEBUG)  # every line a process may write
    try:
        with dispatched() as queue:
            first_half(backend, admin, clock)
            roster = home / "roster.xlsx"
            roster.write_bytes(roster_xlsx(40))  # the demo's first planted mistakes
            imported = CliRunner().invoke(
                cli, ["roster", "import", str(roster), "--unit", "U410303001"]
            )
            assert imported.exit_code == 0, imported.output
            assert "rejected" in imported.output
            roster.unlink()  # the operator's own file, not the deployment's
            deliver_to_reporting(backend)
            assert support.run_consumers(
                [support.consumer(backend, "notify")],
                until=lambda: (
                    broker_status("notify", backend.settings)["event_queue"]["depth"] == 0
                ),
                timeout=90,
                settle=0.5,
            )
        assert queue, "welcomes were asked for"
        drain(backend, file_sender(backend, quiet_start=None, quiet_end=None), queue)
        runs.run_now(backend.rt("reporting"), "city")
    finally:
        logs.unconfigure()
        logging.getLogger().setLevel(level)
        log.close()
    assert (home / "outbox" / "sms.jsonl").exists()
    assert any((home / "reports").rglob("report.xlsx"))
    assert log.name and Path(log.name).stat().st_size > 0

    done = scan()
    assert done.exit_code == 0, done.output
    assert "total: 0 ID numbers, 0 mobiles in clear" in done.output

    # and it does read what the month left: a clear number in a log line is found
    with (home / "logs" / "servicemonth.log").open("a", encoding="utf-8") as more:
        more.write(json.dumps({"event": "oops", "phone": "13812348000"}) + "\n")
    again = scan()
    assert again.exit_code == 1 and "138****8000" in again.output
    assert "13812348000" not in again.output


def test_a_number_typed_into_a_wish_a_need_or_a_reason_is_kept_masked(
    backend: Any, admin: Any
) -> None:
    """What people type is free text: a wish's title, description or a reason, a need's or
    a project's title and schedule, why a report-in was rejected may hold a mobile or an ID
    number. It is kept masked, in the tables and in the events published."""
    from services.pairing.models import CommunityReplica

    with backend.rt("pairing").uow() as uow:  # as directory.community_changed would
        uow.session.add(CommunityReplica(code="410303001001", name="王城", district_code="410303"))
        uow.commit()
    wish = {
        "community_code": "410303001001",
        "title": "帮忙买药 13812348000",
        "description": "请联系 139 1234 8000，身份证 410303198001010015，或 zhangsan@example.com",
    }
    made = admin.post("/api/v1/wishes", json=wish)
    assert made.status_code == 201, made.text
    assert made.json()["title"] == "帮忙买药 138****8000"
    path = f"/api/v1/wishes/{made.json()['id']}"
    assert admin.post(f"{path}/submit").status_code == 200
    rejected = admin.post(f"{path}/reject", json={"reason": "重复，已电话 13812348000"})
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["reason"] == "重复，已电话 138****8000"
    need = {"title": "陪老人就医，家属 13812348000", "required_skill": "医疗护理"}
    made = admin.post("/api/v1/communities/410303001001/needs", json=need)
    assert made.status_code == 201, made.text
    assert made.json()["title"] == "陪老人就医，家属 138****8000"
    project = {"kind": "文明创建", "title": "楼道清洁", "schedule": "周六上午，联系 13812348000"}
    made = admin.post("/api/v1/communities/410303001001/projects", json=project)
    assert made.status_code == 201, made.text
    assert made.json()["schedule"] == "周六上午，联系 138****8000"
    member = admin.post("/api/v1/members", json=support.member_body(5))
    assert member.status_code == 201, member.text
    registration = member.json()["registrations"][0]["id"]
    reason = {"reason": "查无此人，请本人致电 13812348000"}
    rejected = admin.post(f"/api/v1/registrations/{registration}/reject", json=reason)
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["reason"] == "查无此人，请本人致电 138****8000"
    support.relay_all(backend, "pairing")
    support.relay_all(backend, "registration")
    done = scan()
    assert done.exit_code == 0, done.output
