"""The demo's messages and reports: who is told what during the month, and the leader's
final report.

Community staff and unit organisers get staff accounts in registration (``POST
/api/v1/staff``), which reach notify as contacts through ``staff.saved``; the city's leader
subscribes to the campaign's reports. As the simulated clock walks through the month the
demo runs the sweeps the deployment's scheduler would run (reminders, due messages, report
slots), then prints what notify sent and where the final city report lies.
"""

from __future__ import annotations

import random
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import httpx

from services.demo_data import COMMUNITIES, UNITS, synthetic_member
from shared.config import CAMPAIGN_TZ

KIND_LABELS = {
    "welcome": "报到欢迎",
    "pairing_made": "对接通知",
    "wish_claimed": "心愿认领(社区)",
    "claim_expiring": "认领将到期",
    "wish_confirmed": "心愿确认感谢",
    "activity_returned": "记录退回",
    "members_reported_in": "报到汇总(社区)",
    "kickoff": "启动通知",
    "weekly_progress": "每周进度",
    "countdown": "倒计时",
    "unit_behind": "单位未完成名单",
    "cadre_reminder": "领导干部提醒",
    "digest": "合并摘要",
    "report_ready": "报告已发送",
    "report_failed": "报告失败",
}


class Outreach:
    """Sets up who hears what, runs the scheduler's sweeps on demand, prints the outcome."""

    def __init__(self, http: httpx.Client, start: date, end: date, reports_dir: Path) -> None:
        self.http = http
        self.reports_dir = reports_dir
        # the final report covers the whole campaign: [first day, the day after the last)
        self.final_period = (str(start), str(end + timedelta(days=1)))

    def _is_final(self, report: dict[str, Any]) -> bool:
        period = tuple(_local_day(report[k]) for k in ("period_start", "period_end"))
        return bool(report["subscription_id"]) and period == self.final_period

    def set_up(self) -> None:
        rng = random.Random(3707)
        people = [synthetic_member(rng, UNITS, COMMUNITIES) for _ in COMMUNITIES + UNITS]
        scopes = [("community", f"community:{c}") for c in COMMUNITIES]
        scopes += [("unit", f"unit:{u}") for u in UNITS]
        for (role, scope), person in zip(scopes, people, strict=True):
            body = {"role": role, "scope": scope, "name": person["name"], "phone": person["phone"]}
            body["email"] = f"{scope.replace(':', '-')}@example.org"
            _check(self.http.post("/api/v1/staff", json=body), "a staff account")
        leader = {
            "scope": "city",
            "schedule": "campaign",
            "channels": ["email", "sms"],
            "formats": ["html", "xlsx"],
            "name": "市委组织部",
            "email": "leader@example.org",
            "phone": people[0]["phone"],
        }
        _check(self.http.post("/api/v1/subscriptions", json=leader), "the leader's subscription")
        click.echo(
            f"\n{len(COMMUNITIES)} communities and {len(UNITS)} units got a staff account; "
            "the city's leader subscribed to the campaign's reports "
            "(weekly, daily in the last week, final)"
        )

    def sweep(self, settle: float = 60.0) -> None:
        """What the scheduler fires: reminder slots and due messages; report slots. Then
        the workers get the time to finish before the demo's clock moves on (in a real
        month, hours pass between sweeps)."""
        _check(self.http.post("/api/v1/ops/notify/sweep"), "the notify sweep")
        _check(self.http.post("/api/v1/ops/reporting/tick"), "the reporting tick")
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline and self._busy():
            time.sleep(0.2)

    def _busy(self) -> bool:
        notify = get_json(self.http, "/api/v1/ops/notify")
        reporting = get_json(self.http, "/api/v1/ops/reporting")
        return bool(
            notify["messages_due"]
            or notify.get("messages_sending", 0)
            or reporting["reports_working"]
            or reporting["events_pending"]
        )

    def forecast(self, forecast_text: str) -> None:
        click.echo("\nbefore the month, the operator's forecast (servicemonth notify forecast):")
        for line in forecast_text.splitlines():
            click.echo(f"  {line}")

    def finish(self, timeout: float = 120.0) -> None:
        """Wait until the final report is built and every due message has left, then print
        what notify sent and where the final report lies."""
        deadline = time.monotonic() + timeout
        reports: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            self.sweep()
            reports = get_json(self.http, "/api/v1/reports")
            if any(r["state"] == "done" and self._is_final(r) for r in reports):
                time.sleep(2.0)  # report.generated travels to notify, which sends it
                self.sweep()
                break
            time.sleep(1.0)
        self._print(reports)

    def _print(self, reports: list[dict[str, Any]]) -> None:
        summary: dict[str, Any] = get_json(self.http, "/api/v1/ops/notify/summary")
        click.echo("\nmessages of the month (notify, GET /api/v1/ops/notify/summary):")
        for kind, statuses in summary["per_kind"].items():
            counts = ", ".join(f"{s} {n}" for s, n in sorted(statuses.items()))
            click.echo(f"  {kind:<20} {KIND_LABELS.get(kind, ''):<10} {counts}")
        sent = summary["sent"]
        click.echo(
            f"  sent: {sent.get('sms', 0)} SMS ({summary['sms_segments']} segments), "
            f"{sent.get('email', 0)} e-mails; deferred by quiet hours "
            f"{summary['deferred_by_quiet_hours']}; merged by daily caps "
            f"{summary['merged_by_caps']}"
        )
        done = [r for r in reports if r["state"] == "done"]
        click.echo(f"\nreports built for the leader's subscription: {len(done)}")
        final = next((r for r in done if self._is_final(r)), None)
        if final is None:
            click.echo("  the final report is not built yet")
        else:
            click.echo(
                f"final city report ([{_local_day(final['period_start'])}, "
                f"{_local_day(final['period_end'])})), for the leader:"
            )
            for f in final["files"]:
                click.echo(f"  {self.reports_dir / final['id'] / f['name']}")
            click.echo(f"  headline: {final['headline']}")


def _local_day(iso: str) -> str:
    return str(datetime.fromisoformat(iso).astimezone(CAMPAIGN_TZ).date())


def _check(response: httpx.Response, what: str) -> None:
    if response.status_code >= 400:
        raise click.ClickException(f"{what} answered {response.status_code}: {response.text}")


def get_json(http: httpx.Client, path: str) -> Any:
    """The JSON body of ``GET path``; any answer but 200 stops the demo with the reason."""
    response = http.get(path)
    if response.status_code != 200:
        raise click.ClickException(f"GET {path} answered {response.status_code}: {response.text}")
    return response.json()
