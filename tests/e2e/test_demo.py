"""The README's main job: ``servicemonth demo`` runs every service and the counts agree."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import RUN, backend_env, drop_databases


@pytest.mark.xdist_group("whole-system")  # see tests/web/conftest.py
@pytest.mark.timeout(600)  # the whole month, hour by hour: minutes, not seconds
@pytest.mark.parametrize(
    "way",
    # on PostgreSQL + RabbitMQ: with the deployments (make e2e-deployment), not make test
    ["embedded", pytest.param("production", marks=[pytest.mark.deployment])],
)
def test_the_demo_registers_members_and_every_service_agrees(way: str, tmp_path: Path) -> None:
    vhost = None
    if way == "production":
        vhost = "/"  # the demo declares its own deployment's queues
    tag = f"{RUN}_demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVICEMONTH_")}
    env |= backend_env(way, tmp_path / "var", vhost and "%2F", tag)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "services.cli", "demo", "--members", "60", "--busy", "12"],
            env=env,
            capture_output=True,
            text=True,
            timeout=480,
        )
    except subprocess.TimeoutExpired as stuck:  # say where it stood
        said = [
            b.decode() if isinstance(b, bytes) else b or "" for b in (stuck.output, stuck.stderr)
        ]
        pytest.fail(f"the demo did not end within 480 s:\n{said[0][-3000:]}\n{said[1][-3000:]}")
    finally:
        if way == "production":
            drop_databases(f"sm_{tag}")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "counts agree" in out
    # the roster: 120 rows, the five planted mistakes rejected with their row numbers
    assert "done: 120 rows, 115 accepted, 5 rejected" in out
    for row in (8, 20, 34, 49, 62):  # data row n is spreadsheet row n + 1
        assert f"row {row:>4}" in out
    # the front door: a resident signs in by SMS code and registers herself; the community
    # worker signs in the same way and confirms her report-in, there and nowhere else
    assert "signed in as registrant" in out and "signed in as community" in out
    assert "confirmed her report-in there (200)" in out and ": 404 (not hers to see)" in out
    expected = str(115 + 60 + 1)
    for line in ("members registered", "member replicas stored", "member contacts kept"):
        row = next(r for r in out.splitlines() if line in r)
        assert row.split()[-1] == expected, row
    # one welcome per member whose report-in was confirmed, in the file outbox
    welcome = next(r for r in out.splitlines() if r.startswith("welcome messages sent"))
    sent, reported_in = re.findall(r"(\d+) \(members reported in: (\d+)\)", welcome)[0]
    assert sent == reported_in and int(sent) > 100
    outbox = tmp_path / "var" / "outbox"
    sms = [json.loads(line) for line in (outbox / "sms.jsonl").read_text("utf-8").splitlines()]
    assert sum(m["kind"] == "welcome" for m in sms) == int(sent)
    assert any("王城社区" in m["text"] or "唐宫社区" in m["text"] for m in sms)
    assert all(re.fullmatch(r"1\d\d\*{4}\d{4}", m["to"]) for m in sms), "numbers masked"
    # the month: pairing ran, wishes were realized, verified records count
    month = out[out.index("the month in figures") :]
    dual = int(month.split("\n")[1].split()[0])
    assert dual > 0
    assert "confirmed" in month.split("wishes:")[1].split("\n")[0]
    assert int(month.split("home_visit ")[1].split(",")[0]) > 0
    # the reminders went out, quiet hours and caps did their work, as the outbox shows
    kinds = {m["kind"] for m in sms}
    assert {"kickoff", "weekly_progress", "countdown", "digest"} <= kinds
    totals = re.search(r"deferred by quiet hours (\d+); merged by daily caps (\d+)", out)
    assert totals and int(totals[1]) > 0 and int(totals[2]) > 0
    # the leader's final city report: HTML, charts and workbook on disk, e-mailed
    report = out[out.index("final city report") :].splitlines()
    files = [Path(line.strip()) for line in report[1:5]]
    assert [f.name for f in files] == ["report.html", "ranking.png", "progress.png", "report.xlsx"]
    assert all(f.is_file() and f.stat().st_size > 1000 for f in files)
    assert "报到率" in report[5]
    assert list((outbox / "email").glob("*.eml")), "the report went out by e-mail"
