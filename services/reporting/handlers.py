"""Reporting's one table: which function handles each command (:data:`COMMANDS`) and which
apply each event it listens to (:func:`events`).

Only the event types a projection reads are bound (:data:`PROJECTIONS`): notifications,
team requests and reports go past. Every applied envelope is first appended to the event
log (:func:`services.reporting.event_log.log_event`), in the same transaction as its
effects; :data:`PROJECTIONS` is also the table a rebuild replays.

Short handlers sit here; the use cases live in the topic modules the table points at:
:mod:`subscriptions`, :mod:`runs` (the tick), :mod:`builds` (a run's report),
:mod:`on_demand` (a report without subscription), :mod:`downloads`, :mod:`snapshots`,
:mod:`rebuild`, and the projections (:mod:`projections`, :mod:`pairing_facts`,
:mod:`pseudonyms`).
"""

from __future__ import annotations

from services.reporting import (
    builds,
    downloads,
    on_demand,
    pairing_facts,
    projections,
    pseudonyms,
    rebuild,
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
from services.reporting.event_log import log_event
from services.reporting.schemas import SubscriptionOut
from shared.auth import apply_revocation, revoke_member_tokens
from shared.db import UnitOfWork
from shared.events import (
    REGISTRATION_EVENTS,
    WISH_EVENTS,
    ActivityReturned,
    ActivitySubmitted,
    ActivityVerified,
    CommunityChanged,
    Envelope,
    Event,
    MemberRegistered,
    MemberUpdated,
    MemberWithdrawn,
    PairingEnded,
    PairingMade,
    TokensRevoked,
    UnitChanged,
)
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
    return rebuild.rebuild(rt, PROJECTIONS, progress=cmd.progress)


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

#: What each event does to the read models (the log aside): applied live and on rebuild.
PROJECTIONS = (
    EventTable()
    .on(MemberRegistered, projections.record_member)
    .on(MemberUpdated, projections.record_member)
    .on(MemberWithdrawn, projections.forget_member)
    .on(CommunityChanged, projections.record_community)
    .on(UnitChanged, projections.record_unit)
    .on(PairingMade, pairing_facts.record_pairing)
    .on(PairingEnded, pairing_facts.record_pairing)
    .on(ActivitySubmitted, pairing_facts.record_activity)
    .on(ActivityVerified, pairing_facts.record_activity)
    .on(ActivityReturned, pairing_facts.record_activity)
)
for _registration in REGISTRATION_EVENTS:
    PROJECTIONS.on(_registration, projections.record_registration)
for _wish in WISH_EVENTS.values():
    PROJECTIONS.on(_wish, pairing_facts.record_wish)


def events(rt: Runtime) -> EventTable:
    """The events of :data:`PROJECTIONS` (the others are ignored, not logged): a withdrawn
    member's id replaced by their pseudonym, logged, then projected; a withdrawal then
    revokes the member's tokens and pseudonymises (the tables and the log, names dropped)
    — once, live: a rebuild replays only the projections. ``auth.revoked``: reporting
    refuses those tokens too."""

    def apply(event: Event, envelope: Envelope, uow: UnitOfWork) -> None:
        event, envelope = pseudonyms.substitute(event, envelope, uow, rt.sealer)
        log_event(event, envelope, uow)
        for handler in PROJECTIONS[type(event)]:
            handler(event, envelope, uow)
        if isinstance(event, MemberWithdrawn):
            revoke_member_tokens(uow, event.member_id)
            pseudonyms.forget(uow, event.member_id, rt.sealer)

    table = EventTable()
    for event_type in PROJECTIONS:
        table.on(event_type, apply)
    return table.on(TokensRevoked, apply_revocation)
