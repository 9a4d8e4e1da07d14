"""``servicemonth report …``: reporting's own commands."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from shared.config import CAMPAIGN_TZ

if TYPE_CHECKING:  # drawing libraries load only when a report is built
    from services.reporting.runs import Built


@click.group()
def report() -> None:
    """Reports and the read models behind them."""


@report.command("rebuild")
def rebuild_command() -> None:
    """Empty the projections and replay the event log into them (identical read models)."""
    from services.reporting import runtime
    from services.reporting.rebuild import logged, rebuild

    rt = runtime()
    with click.progressbar(length=logged(rt), label="replaying events") as bar:
        count = rebuild(rt, progress=bar.update)
    click.echo(f"rebuilt the projections from {count} events")


@report.command("snapshot")
def snapshot_command() -> None:
    """Take the daily snapshots of every finished campaign day not yet taken."""
    from services.reporting import runtime
    from services.reporting.snapshots import sweep

    click.echo(f"{sweep(runtime())} snapshots written")


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
    from services.reporting import runtime
    from services.reporting.handlers import check_scope
    from services.reporting.runs import run_now

    check_scope(scope)
    start, end = parse_period(period) if period else (None, None)
    started = time.perf_counter()
    built = run_now(runtime(), scope, start, end)
    for line in describe(built):
        click.echo(line)
    click.echo(f"built in {time.perf_counter() - started:.2f} s")
