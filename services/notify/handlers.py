"""Notify's one table: which function handles each command (:data:`COMMANDS`) and which
apply each event it listens to (:func:`events`).

Short handlers live here; the use cases they call live in the topic modules: ``sending``
(carries out what ``policy`` decides), ``reminders``, ``triggers`` (messages other services'
events cause), ``sign_in``, ``contacts``, ``progress``, ``receipts``. A command handler takes
the command and notify's dependencies (:class:`services.notify.deps.Notify`) and answers
what its command type says.
"""

from __future__ import annotations

import uuid
from functools import partial

from services.notify import (
    access,
    batch,
    bulk,
    contacts,
    history,
    progress,
    receipts,
    reminders,
    sending,
    sign_in,
    triggers,
    views,
)
from services.notify.commands import (
    HandleReplies,
    RecordReceipts,
    RunReminderSlots,
    SendNotification,
    SendNotifications,
    SetPreferences,
    SweepDueMessages,
)
from services.notify.deps import Notify
from services.notify.models import Contact, FiveOnesReplica
from services.notify.reminders import SweepResult
from services.notify.schemas import PreferencesOut
from shared.auth import apply_revocation
from shared.events import (
    ActivityReturned,
    CommunityChanged,
    IdNumberTried,
    MemberRegistered,
    MemberUpdated,
    MemberWithdrawn,
    PairingMade,
    RegistrationConfirmed,
    ReportGenerated,
    SignInCodeRequested,
    StaffAccountDisabled,
    StaffAccountSaved,
    TokensRevoked,
    UnitChanged,
    WishClaimed,
    WishConfirmed,
    WishFulfilled,
    WishReleased,
)
from shared.messagebus import CommandTable, EventTable

# --- commands ------------------------------------------------------------------------------------


def send_notification(cmd: SendNotification, deps: Notify) -> sending.Outcome:
    with deps.runtime.uow() as uow:
        return sending.send_notification(cmd.notification_id, uow, deps.sender)


def send_notifications(cmd: SendNotifications, deps: Notify) -> dict[uuid.UUID, sending.Outcome]:
    return batch.send_many(cmd.notification_ids, deps.runtime, deps.sender)


def sweep_due_messages(cmd: SweepDueMessages, deps: Notify) -> int:
    """Deferred ones whose time has come, and ones whose task was lost (a crash between
    commit and enqueue, or mid-send): marked handed over, committed, then dispatched. Not
    every waiting one: a message just handed over, or whose retry is coming, is left to
    that task."""
    with deps.runtime.uow() as uow:
        ids = history.due(uow)
        uow.commit()
    bulk.hand_over(deps.dispatch, ids)
    return len(ids)


def run_reminder_slots(cmd: RunReminderSlots, deps: Notify) -> SweepResult:
    return reminders.sweep(deps.runtime, cmd.now, cmd.holder, deps.dispatch)


def set_preferences(cmd: SetPreferences, deps: Notify) -> PreferencesOut:
    with deps.runtime.uow() as uow:
        contact = access.own_or_operator(uow, cmd.principal, cmd.member_id)
        contacts.set_preferences(uow, contact, cmd.sms, cmd.email)
        uow.commit()
        return views.preferences_of(cmd.member_id, contact)


def record_receipts(cmd: RecordReceipts, deps: Notify) -> dict[str, int]:
    counts: dict[str, int] = {}
    district = deps.runtime.settings.district
    with deps.runtime.uow() as uow:
        for item in cmd.items:
            receipt = receipts.parse_receipt(item)
            outcome = receipts.apply_receipt(uow, cmd.provider, receipt, district)
            counts[outcome] = counts.get(outcome, 0) + 1
        uow.commit()
    return counts


def handle_replies(cmd: HandleReplies, deps: Notify) -> int:
    with deps.runtime.uow() as uow:
        opted_out = contacts.opt_out_replies(uow, deps.runtime.sealer, cmd.items)
        uow.commit()
    return opted_out


COMMANDS: CommandTable[Notify] = CommandTable(
    {
        SendNotification: send_notification,
        SendNotifications: send_notifications,
        SweepDueMessages: sweep_due_messages,
        RunReminderSlots: run_reminder_slots,
        SetPreferences: set_preferences,
        RecordReceipts: record_receipts,
        HandleReplies: handle_replies,
    }
)


# --- events --------------------------------------------------------------------------------------


def events(deps: Notify) -> EventTable:
    """What notify does with each event it listens to, in order: keep the contacts and the
    directory's names, queue the messages events cause (handed to the send task with
    ``deps.dispatch``), keep the five-ones replica the reminders read."""
    sealer, rules, dispatch = deps.runtime.sealer, deps.rules, deps.dispatch
    keep_contact = partial(contacts.keep_contact, sealer=sealer)
    table = (
        EventTable()
        .on(MemberRegistered, keep_contact)
        .on(MemberUpdated, keep_contact)
        .on(MemberWithdrawn, contacts.forget_member)
        .on(StaffAccountSaved, partial(contacts.keep_staff, sealer=sealer))
        .on(StaffAccountDisabled, contacts.disable_staff)
        .on(CommunityChanged, contacts.record_community)
        .on(UnitChanged, contacts.record_unit)
        .on(
            RegistrationConfirmed,
            partial(
                triggers.registration_confirmed,
                dispatch=dispatch,
                rules=rules,
                sealer=sealer,
                served=contacts.residents(deps.runtime.settings),
            ),
        )
        .on(PairingMade, partial(triggers.pairing_made, dispatch=dispatch))
        .on(
            WishClaimed,
            partial(triggers.wish_claimed, dispatch=dispatch, rules=rules, sealer=sealer),
        )
        .on(WishFulfilled, triggers.claim_closed)
        .on(WishReleased, triggers.claim_closed)
        .on(WishConfirmed, partial(triggers.wish_confirmed, dispatch=dispatch))
        .on(ActivityReturned, partial(triggers.activity_returned, dispatch=dispatch))
        .on(ReportGenerated, partial(triggers.report_generated, dispatch=dispatch))
        .on(SignInCodeRequested, partial(sign_in.send_sign_in_code, dispatch=dispatch))
        .on(IdNumberTried, partial(sign_in.tell_id_number_holder, dispatch=dispatch))
        .on(TokensRevoked, apply_revocation)
    )
    for event_type, extra in progress.HANDLERS.items():  # the five-ones replica (reminders)
        table.on(event_type, *extra)
    return table.looks_up(Contact, FiveOnesReplica, by="member_id")
