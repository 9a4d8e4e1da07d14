"""Reporting's API says what it answers, and its command line is where the CLI finds it."""

from __future__ import annotations

import click

from services.app import create_app
from services.reporting.builds import MEDIA
from services.reporting.schemas import TickOut
from tests.unit.test_openapi import _undescribed

#: Routes reporting does not build itself: the status route every service gets from
#: shared.auth, and the app's health check.
NOT_REPORTINGS = {"GET /api/v1/ops/reporting 200", "GET /healthz 200"}


def test_every_reporting_answer_is_described() -> None:
    spec = create_app(["reporting"]).openapi()
    assert set(_undescribed(spec)) - NOT_REPORTINGS == set()


def test_a_report_file_declares_the_media_types_reports_are_written_in() -> None:
    spec = create_app(["reporting"]).openapi()
    answer = spec["paths"]["/api/v1/reports/{report_id}/files/{name}"]["get"]["responses"]["200"]
    assert set(answer["content"]) == set(MEDIA.values())
    assert all(c["schema"]["format"] == "binary" for c in answer["content"].values())


def test_the_tick_leaves_out_what_it_did_not_do() -> None:
    assert TickOut(snapshots=0).model_dump(exclude_defaults=True) == {"snapshots": 0}
    assert TickOut(snapshots=2, claimed=1).model_dump(exclude_defaults=True) == {
        "snapshots": 2,
        "claimed": 1,
    }


def test_servicemonth_report_has_its_commands() -> None:
    from services.cli import cli

    report = cli.commands["report"]
    assert isinstance(report, click.Group)
    assert set(report.commands) == {"rebuild", "snapshot", "run"}
