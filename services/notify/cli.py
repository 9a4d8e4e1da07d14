"""``servicemonth notify …``: notify's own command line (the reminder forecast, a read)."""

from __future__ import annotations

import json
from datetime import datetime

import click

from shared.config import CAMPAIGN_TZ


@click.group("notify")
def notify_commands() -> None:
    """Notify: the month's SMS and e-mail."""


@notify_commands.command("forecast")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
def forecast_command(as_json: bool) -> None:
    """How many SMS and e-mails the rest of the reminder calendar queues, and its SMS
    segments (cost), from now (the clock) to the campaign's end. Triggered messages are
    not in it; a daily cap may merge some reminders into a digest (sent, not lost)."""
    from services.notify.bootstrap import runtime
    from services.notify.forecast import ASSUMPTION, RULE, forecast

    result = forecast(runtime())
    if as_json:
        click.echo(json.dumps(result.view(), ensure_ascii=False, indent=2))
        return
    local = result.now.astimezone(CAMPAIGN_TZ)
    click.echo(f"Reminders from {_when(local)} to the campaign's end ({result.campaign_end}):")
    click.echo(f"{RULE};")
    click.echo(f"this {ASSUMPTION}.")
    click.echo(f"{'job':<18}{'slots':>6}{'SMS':>9}{'e-mail':>9}{'none':>7}{'segments':>10}")
    for job in result.jobs.values():
        v = job.view()
        click.echo(
            f"{v['job']:<18}{len(v['slots']):>6}{v['sms']:>9}{v['email']:>9}"
            f"{v['no_channel']:>7}{v['sms_segments']:>10}"
        )
    t = result.totals
    click.echo(
        f"{'total':<18}{'':>6}{t['sms']:>9}{t['email']:>9}{t['no_channel']:>7}"
        f"{t['sms_segments']:>10}"
    )


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M %Z")
