"""Report files travel without a shared folder: reporting keeps them in its database and
serves them over HTTP; notify, under another SERVICEMONTH_HOME, fetches them with the
report-files token and e-mails the report. Nobody without that token (or a person's token
covering the report) learns anything, and a reporting that does not answer makes the
e-mail wait, not fail."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from services import registry
from services.notify import bootstrap
from services.notify.models import Notification
from services.notify.report_files import HttpReportFiles, ReportMissing
from services.reporting import runs
from services.reporting.builds import Built
from services.reporting.models import ReportDownload
from shared.clock import SimulatedClock
from shared.config import CAMPAIGN_TZ, load
from shared.events import ReportGenerated, SealedContact
from shared.migrations import upgrade
from shared.runtime import Runtime, build
from tests.conftest import Backend, open_backend
from tests.integration.notify_support import FakeEmail, apply, dispatched, drain, make_sender
from tests.integration.test_reporting_reports import OPEN, Feed
from tests.support import client, free_port, issue_token, on_simulated_clock, serving

TOKEN = "report-files-" + "k" * 24
DAYTIME = datetime(2016, 7, 4, 10, 0, tzinfo=CAMPAIGN_TZ)  # no quiet hours


@pytest.fixture(params=["embedded", "production"])
def reporting(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Backend]:
    """Reporting's side: its own home, the report-files token set."""
    home = tmp_path / "reporting-home"
    extra = {"SERVICEMONTH_REPORT_FILES_TOKEN": TOKEN}
    with open_backend(request.param, home, monkeypatch, request, **extra) as backend:
        on_simulated_clock(backend, DAYTIME)
        yield backend


@pytest.fixture
def server(reporting: Backend) -> Iterator[str]:
    """Reporting's routes alone on a real uvicorn server, on a free loopback port."""
    with serving(["reporting"]) as url:
        yield url


@pytest.fixture
def notify(reporting: Backend, tmp_path: Path, server: str) -> Iterator[Backend]:
    """Notify's side: another SERVICEMONTH_HOME (nothing of reporting's there), reaching
    reporting only at its URL."""
    env = reporting.env | {
        "SERVICEMONTH_HOME": str(tmp_path / "notify-home"),
        "SERVICEMONTH_REPORTING_URL": server,
    }
    settings = load(env)
    rt = build("notify", registry.metadata("notify"), settings)
    if not reporting.production:
        upgrade("notify", rt.db)  # its own SQLite file, under its own home
    sim = SimulatedClock(DAYTIME)
    yield Backend(
        reporting.name, env, settings, {"notify": Runtime("notify", settings, rt.db, sim)}
    )
    rt.db.dispose()


def built_report(reporting: Backend) -> Built:
    """A report reporting built, its folder copy removed: only its database keeps it."""
    rt = reporting.rt("reporting")
    feed = Feed(rt)
    feed.directory()
    for n in range(6):
        feed.member(n, OPEN + timedelta(days=n, hours=9))
    built = runs.run_now(rt, "district:410303")
    shutil.rmtree(rt.settings.reports_dir)
    return built


def report_generated(notify: Backend, built: Built) -> ReportGenerated:
    sealed = notify.rt("notify").sealer.seal_json(
        {"name": "王局长", "phone": "13700001234", "email": "leader@example.cn"},
        SealedContact.CONTEXT,
    )
    return ReportGenerated(
        report_id=built.report_id,
        subscription_id=uuid.uuid4(),
        scope="district:410303",
        period_start=OPEN,
        period_end=DAYTIME,
        title=built.title,
        headline=built.headline,
        files=built.files,
        recipient=SealedContact(sealed=sealed, phone_masked="137****1234"),
        channels=["email"],
    )


def test_a_report_built_by_reporting_is_e_mailed_by_notify_with_no_folder_shared(
    reporting: Backend, notify: Backend
) -> None:
    built = built_report(reporting)
    assert notify.settings.home != reporting.settings.home
    mail = FakeEmail()
    sender = make_sender(notify, email=mail)
    sender.reports = fetcher = bootstrap.report_files(notify.settings)  # a worker's
    with dispatched() as queue:
        apply(notify, report_generated(notify, built))
        assert drain(notify, sender, queue) == {"sent": 1}
    fetcher.close()
    (sent,) = mail.sent
    assert sent.html is not None and "报到率" in sent.html
    by_name = {a.filename: a for a in sent.attachments}
    assert set(by_name) == {"ranking.png", "progress.png", "report.xlsx"}
    assert by_name["ranking.png"].data.startswith(b"\x89PNG")
    assert by_name["ranking.png"].inline_cid and by_name["report.xlsx"].data[:2] == b"PK"
    assert not notify.settings.reports_dir.exists()  # nothing of the report on notify's side
    with reporting.rt("reporting").db.session() as session:
        audit = session.scalars(select(ReportDownload)).all()
    assert {(a.role, a.token_id) for a in audit} == {("notify", "report-files-token")}
    assert len(audit) == 4  # each file once

    # and the leader downloads the same report from the database, too
    leader = issue_token(reporting, "leader", "district:410303")
    with client(leader) as http:
        got = http.get(f"/api/v1/reports/{built.report_id}/files/report.xlsx")
    assert got.status_code == 200 and got.content == by_name["report.xlsx"].data


def test_report_files_need_the_token_and_a_stranger_learns_nothing(
    reporting: Backend, server: str
) -> None:
    built = built_report(reporting)
    path = f"/api/v1/reports/{built.report_id}/files/report.xlsx"
    with client() as http:
        assert http.get(path).status_code == 401
    for wrong in ("x" * len(TOKEN), TOKEN[:-1], TOKEN + "x", TOKEN.upper()):
        with client(wrong) as http:
            refused = http.get(path)
        assert refused.status_code == 401 and b"PK" not in refused.content
    with client(TOKEN) as http:
        assert http.get(path).status_code == 200
        assert http.get(f"/api/v1/reports/{uuid.uuid4()}/files/report.xlsx").status_code == 404
        assert http.get(f"/api/v1/reports/{built.report_id}/files/x.xlsx").status_code == 404
        # the token reads report files and nothing else
        assert http.get("/api/v1/reports").status_code == 401
        assert http.get("/api/v1/subscriptions").status_code == 401
    stranger = HttpReportFiles(server, "s" * 36)
    with pytest.raises(ReportMissing, match="answered 401"):
        stranger.fetch(f"{built.report_id}/report.html")
    stranger.close()
    with reporting.rt("reporting").db.session() as session:
        audit = session.scalars(select(ReportDownload)).all()
    assert [a.role for a in audit] == ["notify"]  # only the one the token fetched


def test_while_reporting_does_not_answer_the_report_e_mail_waits_then_goes(
    reporting: Backend, notify: Backend, server: str
) -> None:
    built = built_report(reporting)
    mail = FakeEmail()
    sender = make_sender(notify, email=mail, retry_delay=2.0)
    unreachable = HttpReportFiles(f"http://127.0.0.1:{free_port()}", TOKEN, timeout=2)
    sender.reports = unreachable
    with dispatched() as queue:
        apply(notify, report_generated(notify, built))
        (waiting,) = queue
        assert drain(notify, sender, queue) == {"retry": 1}
    with notify.rt("notify").db.session() as session:
        message = session.get(Notification, waiting)
        assert message is not None
        assert message.status == "queued" and "did not answer" in (message.error or "")
    assert mail.sent == []

    unreachable.close()
    sender.reports = answering = HttpReportFiles(server, TOKEN)  # reporting answers again
    clock: Any = notify.rt("notify").clock
    clock.advance(timedelta(seconds=2))  # the retry's countdown
    assert drain(notify, sender, [waiting]) == {"sent": 1}
    answering.close()
    (sent,) = mail.sent
    assert {a.filename for a in sent.attachments} == {"ranking.png", "progress.png", "report.xlsx"}
