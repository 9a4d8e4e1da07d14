"""Reporting's one table: which function handles each command (:data:`COMMANDS`) and which
apply each event it listens to (:func:`events`).

Only the event types a projection reads are bound (:data:`services.reporting.replay.FOLDS`,
also what a rebuild replays): notifications, team requests and reports go past. The
consumer hands them to :func:`services.reporting.live.apply_run` a run at a time: logged,
then folded into the read models.

Short handlers sit here; the use cases live in the topic modules the table points at:
:mod:`subscriptions`, :mod:`runs` (the tick), :mod:`builds` (a run's report),
:mod:`on_demand` (a report without subscription), :mod:`downloads`, :mod:`snapshots`,
:mod:`rebuild`, and the read models (:mod:`live`, :mod:`replay`, :mod:`pseudonyms`).
"""

from __future__ import annotations

from collections.abc import Sequence

from services.reporting import (
    builds,
    downloads,
    live,
    on_demand,
    rebuild,
    replay,
    runs,
    snapshots,
    subscriptions,
    views,
)
from services.reporting.access import check_scope
from services.reporting.commands import (
    BuildReport,
    DownloadReportFile,
    RebuildReadModels,
    RunReport,
    Subscribe,
    SubscriptionTick,
    TakeSnapshots,
)
from services.reporting.schemas import SubscriptionOut
from shared.auth import apply_revocation
from shared.db import UnitOfWork
from shared.events import Envelope, Event, TokensRevoked
from shared.messagebus import CommandTable, EventTable
from shared.runtime import Runtime

# --- commands ----------------------------------------------------------------------------------


def subscribe(cmd: Subscribe, rt: Runtime) -> SubscriptionOut:
    with rt.uow() as uow:
        sub = subscriptions.subscribe(uow, cmd.request, cmd.principal, rt.sealer, rt.settings)
        uow.commit()
        return views.subscription_out(sub)


def subscription_tick(cmd: SubscriptionTick, rt: Runtime) -> dict[str, int]:
    return runs.tick(rt, cmd.holder, runs.celery_enqueue(rt))


def build_report(cmd: BuildReport, rt: Runtime) -> str:
    return builds.build(rt, cmd.run_id, cmd.attempt)


def run_report(cmd: RunReport, rt: Runtime) -> builds.Built:
    check_scope(cmd.scope)
    return on_demand.run_now(rt, cmd.scope, cmd.start, cmd.end)


def download_report_file(cmd: DownloadReportFile, rt: Runtime) -> downloads.KeptFile:
    with rt.uow() as uow:
        kept = downloads.open_file(uow, cmd.principal, cmd.report_id, cmd.name)
        uow.commit()
    return kept


def take_snapshots(cmd: TakeSnapshots, rt: Runtime) -> int:
    return snapshots.sweep(rt, cmd.now)


def rebuild_read_models(cmd: RebuildReadModels, rt: Runtime) -> int:
    return rebuild.rebuild(rt, progress=cmd.progress)


COMMANDS: CommandTable[Runtime] = CommandTable(
    {
        Subscribe: subscribe,
        SubscriptionTick: subscription_tick,
        BuildReport: build_report,
        RunReport: run_report,
        DownloadReportFile: download_report_file,
        TakeSnapshots: take_snapshots,
        RebuildReadModels: rebuild_read_models,
    }
)

# --- events ------------------------------------------------------------------------------------


def events(rt: Runtime) -> EventTable:
    """The events of :data:`~services.reporting.replay.FOLDS` (the others are ignored, not
    logged), a run at a time: a withdrawn member's id replaced by their pseudonym, logged,
    then folded into the read models; a withdrawal then revokes the member's tokens and
    pseudonymises (the tables and the log, names dropped) — once, live: a rebuild replays
    only the folds. ``auth.revoked``: reporting refuses those tokens too."""

    def apply(items: Sequence[tuple[Event, Envelope]], uow: UnitOfWork) -> None:
        live.apply_run(items, uow, rt.sealer)

    return EventTable().in_runs(apply, *replay.FOLDS).on(TokensRevoked, apply_revocation)
