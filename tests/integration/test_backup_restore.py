"""The restore drill on PostgreSQL: a month's databases backed up with scripts/backup.sh,
restored with scripts/restore.sh into new databases, and a runtime pointed at those gives
the city summary's figures as before (deploy/README.md, "Backup and a restore drill")."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from services import registry
from services.cli import cli
from shared import runtime as runtime_mod
from shared.clock import SimulatedClock
from shared.config import SERVICES, load
from shared.runtime import Runtime, build
from tests import support
from tests.conftest import drop_databases, open_backend
from tests.integration.reporting_support import (  # noqa: F401 (admin, clock: fixtures)
    SCOPES,
    admin,
    clock,
    deliver_to_reporting,
    first_half,
)

SCRIPTS = Path(__file__).parents[2] / "scripts"
POSTGRES = {"PGHOST": "127.0.0.1", "PGPORT": "5432", "PGUSER": "postgres"}


@pytest.fixture
def backend(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """Production only: the drill is PostgreSQL's dump and restore."""
    with open_backend("production", tmp_path / "var", monkeypatch, request) as backend:
        yield backend


def script(*args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], **POSTGRES}
    return subprocess.run(
        [str(SCRIPTS / args[0]), *args[1:]], env=env, capture_output=True, text=True, timeout=120
    )


def figures(http: Any) -> dict[str, Any]:
    """What a leader reads: every scope's summary, the city's ranking, and what each
    service holds."""
    found: dict[str, Any] = {}
    for scope in SCOPES:
        response = http.get("/api/v1/summary", params={"scope": scope})
        assert response.status_code == 200, response.text
        found[scope] = response.json()
    ranking = http.get("/api/v1/summary/ranking", params={"scope": "city"})
    assert ranking.status_code == 200, ranking.text
    found["ranking"] = ranking.json()
    for service in SERVICES:
        found[f"ops.{service}"] = support.stats(http, service)
    return found


def report_figures(period: str) -> list[str]:
    """The headline figures ``servicemonth report run --scope city`` prints (without the
    file's path and the time it took), as the drill in deploy/README.md compares them."""
    done = CliRunner().invoke(cli, ["report", "run", "--scope", "city", "--period", period])
    assert done.exit_code == 0, done.output
    lines = done.output.splitlines()
    assert lines[-1].startswith("built in")
    return lines[1:-1]


def point_at(backend: Any, base: str, clock: SimulatedClock) -> list[Runtime]:
    """Every service's runtime on the databases ``<base>_<service>``, on ``clock``."""
    url = backend.env["SERVICEMONTH_DATABASE_URL"].rsplit("/", 1)[0] + f"/{base}"
    config = load(backend.env | {"SERVICEMONTH_DATABASE_URL": url})
    runtimes = []
    for service in SERVICES:
        built = build(service, registry.metadata(service), config)
        runtimes.append(Runtime(service, config, built.db, clock))
        runtime_mod.override(service, runtimes[-1])
    return runtimes


@pytest.mark.production
@pytest.mark.deployment  # make e2e-deployment (tests/conftest.py)
def test_a_month_restored_from_its_backup_gives_the_same_summary(
    backend: Any, admin: Any, clock: SimulatedClock, tmp_path: Path
) -> None:
    first_half(backend, admin, clock)
    deliver_to_reporting(backend)
    before = figures(admin)
    assert before["city"]["members"] > 0 and before["ops.reporting"]["events_logged"] > 0
    period = f"2016-06-26..{clock.now().isoformat()}"  # until the backup

    base = backend.env["SERVICEMONTH_DATABASE_URL"].rsplit("/", 1)[1]
    backup = tmp_path / "backup" / "2016-07-01"
    done = script("backup.sh", base, str(backup))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in backup.iterdir()) == [
        "MANIFEST",
        "SHA256SUMS",
        "notify.dump",
        "pairing.dump",
        "registration.dump",
        "reporting.dump",
    ]
    assert script("backup.sh", base, str(backup)).returncode == 1  # never over a backup
    # the month goes on after the backup: the restored databases do not know this member
    clock.advance(timedelta(hours=1))
    assert admin.post("/api/v1/members", json=support.member_body(9000)).status_code == 201
    assert figures(admin)["ops.registration"] != before["ops.registration"]
    live_report = report_figures(period)
    assert live_report

    drill = f"{base}_drill"
    try:
        done = script("restore.sh", str(backup), drill)
        assert done.returncode == 0, done.stderr
        again = script("restore.sh", str(backup), drill)
        assert again.returncode == 1 and "exist; nothing restored" in again.stderr
        restored = point_at(backend, drill, clock)
        try:
            with support.client(support.issue_token(backend, "admin", "city")) as http:
                after = figures(http)
            drill_report = report_figures(period)
        finally:
            for rt in restored:
                rt.db.dispose()
                runtime_mod.override(rt.service, backend.rt(rt.service))
        replaced = script("restore.sh", "--replace", str(backup), drill)
        assert replaced.returncode == 0, replaced.stderr
    finally:
        drop_databases(drill)
    assert after == before
    assert drill_report == live_report


def test_a_backup_that_fails_its_checksums_is_not_restored(tmp_path: Path) -> None:
    backup = tmp_path / "backup"
    backup.mkdir()
    for service in SERVICES:
        (backup / f"{service}.dump").write_bytes(b"PGDMP")
    subprocess.run("sha256sum ./*.dump > SHA256SUMS", shell=True, cwd=backup, check=True)
    (backup / "notify.dump").write_bytes(b"PGDMP, changed")
    done = script("restore.sh", str(backup), "sm_never_restored")
    assert done.returncode == 1
    assert "fails its checksums" in done.stderr
