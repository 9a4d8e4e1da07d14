"""The README's main job: ``servicemonth demo`` runs every service and the counts agree."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import RUN, backend_env, drop_databases


@pytest.mark.parametrize("way", ["embedded", "production"])
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
            timeout=300,
        )
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
    expected = str(115 + 60)
    for line in ("members registered", "member replicas stored", "welcome SMS sent"):
        row = next(r for r in out.splitlines() if line in r)
        assert row.split()[-1] == expected, row
    sms = (tmp_path / "var" / "outbox" / "sms.jsonl").read_text(encoding="utf-8")
    assert len(sms.splitlines()) == 115 + 60
    assert "王城社区" in sms or "唐宫社区" in sms or "金谷园社区" in sms
    # the month: pairing ran, wishes were realized, verified records count
    month = out[out.index("the month in figures") :]
    dual = int(month.split("\n")[1].split()[0])
    assert dual > 0
    assert "confirmed" in month.split("wishes:")[1].split("\n")[0]
    assert int(month.split("home_visit ")[1].split(",")[0]) > 0
