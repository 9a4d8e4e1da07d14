"""The ``servicemonth`` command: run, migrate and demonstrate the services."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import click

from services import operations, pii_scan
from services.keys import keys_commands
from services.notify.cli import notify_commands
from services.provisioning import deploy as deploy_commands
from services.reporting.cli import report as report_commands
from shared.auth import ROLES
from shared.config import SERVICES, ConfigError, export, private_files, settings

SERVICE = click.Choice(SERVICES)
#: What ``serve`` serves: a service's routes, or the web app (pages only).
SERVABLE = click.Choice((*SERVICES, "web"))


def _setup_logging() -> None:
    from shared import logs

    logs.configure(settings())  # JSON lines (or text), personal data masked


def _count_with_neighbours(clean: bool = False) -> None:
    """Count into the deployment's metrics folder, which every HTTP process's /metrics
    reads (``clean``: empty it first, as ``up`` does before starting its children)."""
    from shared import metrics

    metrics.use_shared_counters(settings(), clean=clean)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """在职党员进社区服务月 — run the servicemonth services.

    Settings come from SERVICEMONTH_* environment variables; with none set, everything
    runs embedded under ./var (SQLite and a filesystem broker).
    """
    private_files()  # before anything under SERVICEMONTH_HOME can be created
    private_files(settings().home)  # a bad setting stops here, with its key named
    _setup_logging()


@cli.command()
@click.argument("services", nargs=-1, type=SERVICE)
def migrate(services: tuple[str, ...]) -> None:
    """Create or upgrade the databases of SERVICES (default: all four)."""
    from services import registry
    from shared.migrations import upgrade

    for name in services or SERVICES:
        upgrade(name, registry.runtime(name).db)
        click.echo(f"{name}: database at head")


@cli.command()
@click.argument("service", type=SERVABLE)
@click.option("--port", type=int, default=None, help="TCP port (default SERVICEMONTH_HTTP_PORT).")
def serve(service: str, port: int | None) -> None:
    """Serve one SERVICE's HTTP routes, or `web`: the pages, which reach the services at
    SERVICEMONTH_API_URL."""
    if service == "web":
        _serve([], port, web=True)
    else:
        _serve([service], port)


def _serve(
    names: list[str],
    port: int | None,
    web: bool = False,
    children: Callable[[], Mapping[str, str]] | None = None,
) -> None:
    import uvicorn

    from services.app import create_app

    config = settings()
    port = port or config.http_port
    _count_with_neighbours()
    uvicorn.run(
        create_app(names, web=web, port=port, children=children),
        host=config.http_host,
        port=port,
        log_level="warning",
        access_log=False,  # ours (shared.observability) names the route, not the path
        log_config=None,  # uvicorn's lines go through the root logger: JSON like the rest
    )


@cli.command()
@click.argument("service", type=SERVICE)
def consume(service: str) -> None:
    """Relay SERVICE's outbox and apply the events it listens to."""
    from services.runner import consume as run
    from services.runner import stop_on_signals

    _count_with_neighbours()
    run(service, stop_on_signals())


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("service", type=SERVICE)
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(service: str, celery_args: tuple[str, ...]) -> None:
    """Run SERVICE's Celery worker (extra arguments go to Celery)."""
    import importlib

    from services.supervisor import beat_while_working, heartbeat_path

    app = importlib.import_module(f"services.{service}.tasks").app
    beat_while_working(app, heartbeat_path(settings().home, "worker", service))
    embedded = settings().embedded_broker
    # The node name carries the deployment: several deployments may share a host and a
    # vhost, and Celery's per-node control queue must not collide between them.
    node = f"{service}.{settings().deployment}@%h"
    args = ["--quiet", "worker", "--loglevel", settings().log_level, "--hostname", node]
    if embedded:
        args += ["--pool", "solo", "--without-gossip", "--without-mingle", "--without-heartbeat"]
        # One machine, often a developer's as root: Celery's advice to drop root is noise here.
        warnings.filterwarnings("ignore", message="You're running the worker with superuser")
    app.worker_main([*args, *celery_args])


@cli.command()
def scheduler() -> None:
    """Fire the calendars' sweeps (reminders, report subscriptions); one per deployment."""
    from services.runner import stop_on_signals
    from services.scheduler import Scheduler
    from services.supervisor import Heartbeat, heartbeat_path

    with Heartbeat(heartbeat_path(settings().home, "scheduler")).running():
        Scheduler().run(stop_on_signals())


@cli.command()
@click.argument("kind", type=click.Choice(("consume", "worker", "scheduler")))
@click.argument("service", type=SERVICE, required=False)
@click.option(
    "--max-age",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=1),
    help="Seconds a heartbeat may be old and still count.",
)
def alive(kind: str, service: str | None, max_age: float) -> None:
    """Exit 0 when this host's KIND process (`consume SERVICE`, `worker SERVICE`,
    `scheduler`) is alive and working, 1 when not: a health check for systemd or Compose."""
    from services import supervisor

    if (kind == "scheduler") != (service is None):
        raise click.UsageError("consume and worker take a SERVICE; scheduler takes none")
    what = f"{kind} {service}" if service else kind
    path = supervisor.heartbeat_path(settings().home, kind, service)
    if not supervisor.alive(path, max_age):
        click.echo(f"{what}: not alive (no heartbeat newer than {max_age:.0f} s at {path})")
        sys.exit(1)
    click.echo(f"{what}: alive (pid {supervisor.beating_pid(path)})")


@cli.command()
@click.option("--port", type=int, default=None, help="TCP port (default SERVICEMONTH_HTTP_PORT).")
@click.option(
    "--no-scheduler",
    is_flag=True,
    help="Leave the scheduler out: run `servicemonth scheduler` elsewhere, or fire the "
    "sweeps through POST /api/v1/ops/notify/sweep and /api/v1/ops/reporting/tick "
    "(as the demo does).",
)
def up(port: int | None, no_scheduler: bool) -> None:
    """Run everything: every service's consumer and worker in its own process, the
    scheduler, all routes on one port and the web app at /."""
    from services import registry
    from services.supervisor import Supervisor, background_commands
    from shared.migrations import upgrade

    for name in SERVICES:
        upgrade(name, registry.runtime(name).db)
    _count_with_neighbours(clean=True)  # before the children start counting
    # notify's workers fetch report files from the routes this process serves
    local = f"http://127.0.0.1:{port or settings().http_port}"
    export("SERVICEMONTH_REPORTING_URL", local, replace=False)
    # A child that dies is started again (with backoff); /readyz says so meanwhile.
    children = Supervisor(settings().home, background_commands(SERVICES, not no_scheduler))
    children.start()
    try:
        _serve(list(SERVICES), port, web=True, children=children.status)
    finally:
        children.stop()


@cli.command()
@click.option("--members", default=200, show_default=True, help="Synthetic members to register.")
@click.option("--port", type=int, default=None, help="TCP port for the demo's HTTP server.")
@click.option("--busy", default=30, show_default=True, help="Members active on each demo day.")
def demo(members: int, port: int | None, busy: int) -> None:
    """Run the whole system on the embedded default and walk it through the campaign."""
    from services.demo import run

    sys.exit(run(members=members, port=port, busy=busy))


@cli.group()
def directory() -> None:
    """The directory of communities and units."""


@directory.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def directory_load(file: Path) -> None:
    """Load FILE (CSV or xlsx: kind, code, name, parent_code, …); again changes nothing."""
    from services.registration.bootstrap import bus
    from services.registration.commands import LoadDirectory

    counts = bus().handle(LoadDirectory(principal=None, data=file.read_bytes()))
    click.echo(
        f"{file.name}: {counts.added} added, {counts.changed} changed, {counts.unchanged} unchanged"
    )


@cli.group()
def roster() -> None:
    """Unit rosters (花名册): import one, or write the blank template."""


@roster.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--unit", "unit_code", required=True, help="The unit's code, e.g. U410303001.")
@click.option(
    "--show", default=20, show_default=True, help="How many rejected rows (and notes) to list."
)
def roster_import(file: Path, unit_code: str, show: int) -> None:
    """Import FILE (xlsx, xls, or CSV in UTF-8 or GBK) for a unit; again adds nothing.

    Rejected rows are listed with their row number; the exit code is 0 even then, and 1
    when the file cannot be read.
    """
    from services.registration import rosters
    from services.registration.bootstrap import bus
    from services.registration.commands import ImportRosterFile

    data = file.read_bytes()
    with click.progressbar(length=rosters.estimate_rows(data), label="importing") as bar:
        imported = bus().handle(
            ImportRosterFile(
                unit_code=unit_code, filename=file.name, data=data, show=show, progress=bar.update
            )
        )
    done, roster_id = imported.summary, imported.roster_id
    if done.status == "failed":
        raise click.ClickException(f"{file.name}: {done.detail}")
    click.echo(
        f"{file.name}: {done.accepted} accepted, {done.rejected} rejected, "
        f"{done.duplicates} duplicates of {done.total} rows (roster {roster_id})"
    )
    for error in imported.errors:
        click.echo(f"  row {error['row']}: {error['field']}: {error['message']}")
    if done.rejected:
        click.echo(f"rejected rows and reasons: GET /api/v1/rosters/{roster_id}/errors.xlsx")
    if imported.notes:
        click.echo("landed with a note (kept as the member's own words):")
    for note in imported.notes:
        click.echo(f"  row {note['row']}: {note['field']}: {note['message']}")


@roster.command("template")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=Path("roster-template.xlsx"),
    show_default=True,
    help="Where to write the blank roster.",
)
def roster_template(output: Path) -> None:
    """Write a blank roster (xlsx) with the Chinese headers and a sheet of skills."""
    from services.registration.workbooks import template_workbook

    output.write_bytes(template_workbook())
    click.echo(f"wrote {output}")


@cli.group()
def token() -> None:
    """Access tokens (bearer) for the HTTP API."""


@token.command("create")
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option("--scope", required=True, help="city, district:CODE, unit:CODE, community:CODE …")
@click.option("--label", default=None, help="Who holds it (shown by 'token list').")
@click.option("--days", default=45, show_default=True, type=click.IntRange(1, 400))
def token_create(role: str, scope: str, label: str | None, days: int) -> None:
    """Print a new signed bearer token (shown once; 'token list' shows its id)."""
    from services.registration.bootstrap import bus
    from services.registration.commands import IssueOperatorToken

    command = IssueOperatorToken(role=role, scope=scope, label=label, days=days)
    click.echo(bus().handle(command))


@token.command("list")
def token_list() -> None:
    """The tokens made here that have not expired: id, role, scope, label, expiry, revoked."""
    from services.registration import views
    from services.registration.bootstrap import runtime

    for t in views.operator_tokens(runtime()):
        revoked = f"revoked {t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "active"
        click.echo(
            f"{t.jti}  {t.role:<9} {t.scope:<24} {t.label or '-':<20} "
            f"expires {t.expires_at:%Y-%m-%d %H:%M}  {revoked}"
        )


@token.command("revoke")
@click.argument("token_id")
def token_revoke(token_id: str) -> None:
    """Revoke a token by the id 'token list' shows: refused by every service once the
    revocation has reached it (registration at once)."""
    from services.registration.bootstrap import bus
    from services.registration.commands import RevokeOperatorToken

    bus().handle(RevokeOperatorToken(token_id=token_id))
    click.echo(f"revoked {token_id}")


# Each service's own command group (notify forecast, report run …) is added here.
cli.add_command(notify_commands)
cli.add_command(keys_commands)
cli.add_command(report_commands)
cli.add_command(deploy_commands)
# The operator's: status, dead-letters list|replay|drop, pii-scan.
cli.add_command(operations.status)
cli.add_command(operations.dead_letters)
cli.add_command(pii_scan.pii_scan)


def main(args: Sequence[str] | None = None) -> None:
    """The ``servicemonth`` command (``args``: the command line, default ``sys.argv``): a
    bad setting, a refused request or an unreachable database ends it with one line on
    stderr and a non-zero exit, never a traceback."""
    from sqlalchemy.exc import OperationalError

    from shared.http import DomainError

    try:
        cli(args=args, prog_name="servicemonth")
    except ConfigError as exc:
        click.echo(f"servicemonth: configuration error: {exc}", err=True)
        sys.exit(2)
    except DomainError as exc:
        details = "; ".join(
            (f"row {e['row']}, " if "row" in e else "") + f"{e['field']}: {e['message']}"
            for e in exc.errors
        )
        click.echo(f"servicemonth: {exc.detail}{': ' + details if details else ''}", err=True)
        sys.exit(1)
    except OperationalError as exc:
        # A database that does not answer: say which, in one line, without the URL's password.
        reason = str(exc.orig).splitlines()[0] if exc.orig else str(exc).splitlines()[0]
        click.echo(f"servicemonth: database unavailable: {reason}", err=True)
        sys.exit(3)


if __name__ == "__main__":
    export("PYTHONUNBUFFERED", "1", replace=False)
    main()
