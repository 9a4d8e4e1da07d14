"""``servicemonth report …``: reporting's own commands on the command line. Each turns its
options into a command for the bus (:mod:`services.reporting.commands`); the bus, and with
it the drawing libraries, load only when a command runs."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from services.reporting.commands import RebuildReadModels, RunReport, TakeSnapshots
from shared.config import CAMPAIGN_TZ

if TYPE_CHECKING:
    from services.reporting.builds import Built


@click.group()
def report() -> None:
    """Reports and the read models behind them."""


@report.command("rebuild")
def rebuild_command() -> None:
    """Empty the projections and replay the event log into them (identical read models)."""
    from services.reporting import views
    from services.reporting.bootstrap import bus

    handling = bus()
    with click.progressbar(
        length=views.events_logged(handling.deps), label="replaying events"
    ) as bar:
        count = handling.handle(RebuildReadModels(progress=bar.update))
    click.echo(f"rebuilt the projections from {count} events")


@report.command("snapshot")
def snapshot_command() -> None:
    """Take the daily snapshots of every finished campaign day not yet taken."""
    from services.reporting.bootstrap import bus

    click.echo(f"{bus().handle(TakeSnapshots())} snapshots written")


def parse_period(text: str) -> tuple[datetime, datetime]:
    """``A..B`` as the half-open ``[A, B)``; a bare date is its midnight in Asia/Shanghai."""

    def instant(part: str) -> datetime:
        value = datetime.fromisoformat(part.strip())
        return value if value.tzinfo else value.replace(tzinfo=CAMPAIGN_TZ)

    first, sep, last = text.partition("..")
    try:
        if not sep:
            raise ValueError("no '..'")
        start, end = instant(first), instant(last)
    except ValueError:
        raise click.BadParameter(
            f"{text!r}: use START..END, e.g. 2016-06-26..2016-07-04", param_hint="--period"
        ) from None
    if end <= start:
        raise click.BadParameter(f"{text!r}: the end is not after the start", param_hint="--period")
    return start.astimezone(UTC), end.astimezone(UTC)


def describe(built: Built) -> list[str]:
    """What to print about a finished report: where it is, then its headline figures."""
    return [
        f"{built.title}: {built.html}",
        *(f"  {label}: {value}" for label, value in built.figures),
    ]


@report.command("run")
@click.option("--scope", required=True, help="city, district:CODE, unit:CODE or community:CODE.")
@click.option(
    "--period",
    default=None,
    help="START..END, half-open (2016-06-26..2016-07-04); default: campaign start until now.",
)
def run_command(scope: str, period: str | None) -> None:
    """Build one summary report now (HTML, charts, XLSX under $SERVICEMONTH_HOME/reports)."""
    from services.reporting.access import check_scope
    from services.reporting.bootstrap import bus

    check_scope(scope)
    start, end = parse_period(period) if period else (None, None)
    started = time.perf_counter()
    built = bus().handle(RunReport(scope=scope, start=start, end=end))
    for line in describe(built):
        click.echo(line)
    click.echo(f"built in {time.perf_counter() - started:.2f} s")
