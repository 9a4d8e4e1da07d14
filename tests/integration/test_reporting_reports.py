"""Summary reports on both backends: a closed period re-run unchanged, no personal data in
any file and script escaped, reports listed and downloaded by scope, ``report run``.

Reporting is fed through its own entrypoint (its consumer's handler table, envelope by
envelope, as its queue would deliver them), so the read model is the real one. The feed and
its fixtures are shared with ``test_reporting_runs`` and the browser test.
"""

from __future__ import annotations

import io
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from services import registry
from services.reporting import charts, render, runs, spreadsheet
from services.reporting.contents import ReportData, gather
from services.reporting.models import ReportDownload
from shared import events as ev
from shared.clock import SimulatedClock
from shared.config import CAMPAIGN_TZ
from shared.db import outbox_table
from shared.runtime import Runtime
from tests.support import client, issue_token, on_simulated_clock

ID_NUMBER = re.compile(r"(?<!\d)\d{17}[\dXx](?!\d)|(?<!\d)\d{15}(?!\d)")
MOBILE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
EVIL = "<script>alert('x')</script>"
OPEN = datetime(2016, 6, 26, 0, 0, tzinfo=CAMPAIGN_TZ)
UNITS = {  # code: (name, district, level, community)
    "U410303001": (f"西工区机关{EVIL}", "410303", "county", "410303001001"),
    "U410305001": ("涧西区机关 联系人13812348000", "410305", "county", "410305001001"),
    "U410300001": ("市直机关 410302195001010015", "410300", "city", "410303002001"),
}
COMMUNITIES = {
    "410303001001": "王城社区",
    "410303002001": "唐宫社区 11010519491231002X",
    "410305001001": "金谷园社区",
}


# --- feeding the read model -------------------------------------------------------------------


class Feed:
    """Deliver events to reporting as its consumer would, at chosen instants."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.handlers = registry.handlers("reporting", rt)

    def __call__(self, event: ev.Event, at: datetime, district: str = "410303") -> None:
        envelope = ev.envelope_for(
            event, district=district, campaign="t", producer="test", occurred_at=at
        )
        with self.rt.uow(envelope.id) as uow:
            assert uow.first_time(envelope)
            for handler in self.handlers[type(event)]:
                handler(event, envelope, uow)
            uow.commit()

    def directory(self) -> None:
        for code, name in COMMUNITIES.items():
            self(ev.CommunityChanged(code=code, name=name, district=code[:6]), OPEN)
        for code, (name, district, level, community) in UNITS.items():
            self(
                ev.UnitChanged(
                    code=code, name=name, level=level, district=district, community_code=community
                ),
                OPEN,
            )

    def member(self, n: int, at: datetime, *, confirm: bool = True, active: bool = True) -> None:
        """Member ``n``: registered at ``at``, confirmed twice, paired twice, five ones done."""
        unit = list(UNITS)[n % 3]
        home = list(COMMUNITIES)[(n + 1) % 3]
        member = uuid.UUID(int=n + 1)
        refs = [
            ev.CommunityRef(
                registration_id=uuid.UUID(int=1000 + 2 * n + i),
                community_code=code,
                role=role,
                district=code[:6],
            )
            for i, (role, code) in enumerate((("unit", UNITS[unit][3]), ("residence", home)))
        ]
        self(
            ev.MemberRegistered(
                member_id=member,
                unit_code=unit,
                unit_district=UNITS[unit][1],
                communities=refs,
                is_leader_cadre=n % 4 == 0,
            ),
            at,
        )
        if not confirm:
            return
        for ref in refs:
            self(
                ev.RegistrationConfirmed(
                    registration_id=ref.registration_id,
                    member_id=member,
                    community_code=ref.community_code,
                    role=ref.role,
                    state="confirmed",
                ),
                at + timedelta(hours=2),
            )
        if not active:
            return
        for i, kind in enumerate(("need", "project")):
            self(
                ev.PairingMade(
                    pairing_id=uuid.UUID(int=5000 + 2 * n + i),
                    member_id=member,
                    kind=kind,
                    community_code=home,
                    subject_id=uuid.UUID(int=9000 + n),
                    title=f"帮扶{EVIL} 13912345678",
                    state="active",
                ),
                at + timedelta(hours=3),
            )
        wish = uuid.UUID(int=7000 + n)
        for state in ("published", "claimed", "fulfilled", "confirmed"):
            self(
                ev.WISH_EVENTS[state](
                    wish_id=wish,
                    community_code=home,
                    title=f"心愿{EVIL}身份证410302195001010015",
                    state=state,
                    member_id=member if state != "published" else None,
                ),
                at + timedelta(hours=4),
            )
        for i, kind in enumerate(("home_visit", "community_activity", "policy_talk")):
            self(
                ev.ActivityVerified(
                    record_id=uuid.UUID(int=20000 + 5 * n + i),
                    member_id=member,
                    kind=kind,
                    community_code=home,
                    day=(at + timedelta(hours=5)).astimezone(CAMPAIGN_TZ).date(),
                    hours=1.5 + n % 3,
                    state="verified",
                ),
                at + timedelta(hours=5),
            )


@pytest.fixture
def clock(backend: Any) -> SimulatedClock:
    return on_simulated_clock(backend, OPEN + timedelta(hours=6))


@pytest.fixture
def rt(backend: Any, clock: SimulatedClock) -> Runtime:
    return backend.rt("reporting")  # type: ignore[no-any-return]


@pytest.fixture
def feed(rt: Runtime) -> Feed:
    f = Feed(rt)
    f.directory()
    return f


def generated(rt: Runtime) -> list[dict[str, Any]]:
    """The report.generated events reporting has committed to its outbox."""
    outbox = outbox_table(rt.db.metadata)
    with rt.db.session() as session:
        bodies = session.scalars(select(outbox.c.body)).all()
    events = [json.loads(b) for b in bodies]
    return [e["payload"] for e in events if e["type"] == "report.generated"]


# --- the report's contents ---------------------------------------------------------------------


def period_data(rt: Runtime, start: datetime, end: datetime) -> ReportData:
    with rt.uow() as uow:
        return gather(
            uow, "city", start, end, threshold=0.6, campaign_start=rt.settings.campaign_start
        )


def test_a_closed_period_re_run_gives_identical_figures_and_ranks(
    rt: Runtime, clock: SimulatedClock, feed: Feed
) -> None:
    for n in range(12):
        feed.member(n, OPEN + timedelta(days=n % 7, hours=9), active=n % 3 != 0)
    start, end = OPEN.astimezone(UTC), datetime(2016, 7, 4, 8, 30, tzinfo=CAMPAIGN_TZ)
    clock.set(end + timedelta(hours=1))
    first = period_data(rt, start, end)
    html = render.html(first)
    for n in range(12, 24):  # later events, after the period
        feed.member(n, end + timedelta(days=1 + n % 5))
    clock.set(end + timedelta(days=8))
    again = period_data(rt, start, end)
    assert again.sections() == first.sections()
    assert render.html(again) == html
    assert first.after.members == 12 and first.ranked
    later = period_data(rt, start, end + timedelta(days=8))
    assert later.after.members == 24  # the later events do count in a later period


def test_no_report_file_holds_an_unmasked_id_number_or_mobile_and_script_is_escaped(
    backend: Any, rt: Runtime, clock: SimulatedClock, feed: Feed
) -> None:
    for n in range(9):
        feed.member(n, OPEN + timedelta(days=n, hours=9))
    clock.set(datetime(2016, 7, 20, 10, tzinfo=CAMPAIGN_TZ))
    built = runs.run_now(rt, "city")
    html = built.html.read_text(encoding="utf-8")
    assert EVIL not in html and "&lt;script&gt;" in html
    book = load_workbook(rt.settings.reports_dir / str(built.report_id) / "report.xlsx")
    cells = [
        str(v) for s in book.worksheets for row in s.iter_rows(values_only=True) for v in row if v
    ]
    data = period_data(rt, OPEN.astimezone(UTC), clock.now())
    texts = charts.ranking_chart(data).texts + charts.progress_chart(data).texts
    for where, text in (("html", html), ("xlsx", " ".join(cells)), ("png", " ".join(texts))):
        assert not ID_NUMBER.search(text), f"{where}: {ID_NUMBER.search(text)}"
        assert not MOBILE.search(text), f"{where}: {MOBILE.search(text)}"
    assert "市直机关 410***********0015" in cells
    assert io.BytesIO(spreadsheet.workbook(data)).getbuffer().nbytes > 4000


def test_reports_are_listed_and_downloaded_by_scope_with_an_audit_entry(
    backend: Any, rt: Runtime, clock: SimulatedClock, feed: Feed
) -> None:
    feed.member(0, OPEN + timedelta(hours=9))
    clock.set(datetime(2016, 7, 1, 10, tzinfo=CAMPAIGN_TZ))
    city = runs.run_now(rt, "city")
    district = runs.run_now(rt, "district:410303")
    leader = issue_token(backend, "leader", "district:410303")
    with client(leader) as http:
        listed = http.get("/api/v1/reports").json()
        assert [r["id"] for r in listed] == [str(district.report_id)]
        names = [f["name"] for f in listed[0]["files"]]
        assert names == ["report.html", "ranking.png", "progress.png", "report.xlsx"]
        got = http.get(f"/api/v1/reports/{district.report_id}/files/report.xlsx")
        assert got.status_code == 200 and got.content[:2] == b"PK"
        assert got.headers["content-type"].startswith("application/vnd.openxmlformats")
        assert http.get(f"/api/v1/reports/{city.report_id}/files/report.html").status_code == 404
        assert http.get(f"/api/v1/reports/{district.report_id}/files/..%2Fx").status_code == 404
    with rt.db.session() as session:
        (audit,) = session.scalars(select(ReportDownload)).all()
    assert (audit.role, audit.scope, audit.file) == ("leader", "district:410303", "report.xlsx")
    assert generated(rt) == []  # nobody subscribed to on-demand reports


def test_report_run_on_the_command_line_prints_the_path_and_headline(
    backend: Any, rt: Runtime, clock: SimulatedClock, feed: Feed
) -> None:
    from click.testing import CliRunner

    from services.cli import cli

    feed.member(0, OPEN + timedelta(hours=9))
    done = CliRunner().invoke(
        cli, ["report", "run", "--scope", "city", "--period", "2016-06-26..2016-07-04"]
    )
    assert done.exit_code == 0, done.output
    first = done.output.splitlines()[0]
    assert first.endswith("report.html") and "全市" in first
    assert "报到率" in done.output and "built in" in done.output
    bad = CliRunner().invoke(cli, ["report", "run", "--scope", "city", "--period", "july"])
    assert bad.exit_code == 2 and "START..END" in bad.output
