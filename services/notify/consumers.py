"""The events notify listens to, and what it does with each."""

from __future__ import annotations

from functools import partial

from services.notify import handlers, history, progress, sign_in
from services.notify.messages import dispatch
from services.notify.rules import Rules
from shared.auth import apply_revocation
from shared.consumer import Handler
from shared.events import (
    WISH_EVENTS,
    ActivityReturned,
    CommunityChanged,
    Event,
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
)
from shared.runtime import Runtime


def handlers_for(rt: Runtime) -> dict[type[Event], list[Handler]]:
    rules = Rules.from_settings(rt.settings)
    keep_contact = partial(handlers.keep_contact, sealer=rt.sealer)
    table: dict[type[Event], list[Handler]] = {
        MemberRegistered: [keep_contact],
        MemberUpdated: [keep_contact],
        MemberWithdrawn: [handlers.forget_member],
        StaffAccountSaved: [partial(handlers.keep_staff, sealer=rt.sealer)],
        StaffAccountDisabled: [handlers.disable_staff],
        CommunityChanged: [handlers.record_community],
        UnitChanged: [handlers.record_unit],
        RegistrationConfirmed: [
            partial(handlers.registration_confirmed, rules=rules, sealer=rt.sealer)
        ],
        PairingMade: [handlers.pairing_made],
        WISH_EVENTS["claimed"]: [partial(handlers.wish_claimed, rules=rules, sealer=rt.sealer)],
        WISH_EVENTS["fulfilled"]: [handlers.claim_closed],
        WISH_EVENTS["released"]: [handlers.claim_closed],
        WISH_EVENTS["confirmed"]: [handlers.wish_confirmed],
        ActivityReturned: [handlers.activity_returned],
        ReportGenerated: [handlers.report_generated],
        SignInCodeRequested: [sign_in.send_sign_in_code],
        IdNumberTried: [sign_in.tell_id_number_holder],
        TokensRevoked: [apply_revocation],
    }
    for event_type, extra in progress.HANDLERS.items():  # the five-ones replica (reminders)
        table.setdefault(event_type, []).extend(extra)
    return table


def periodic(rt: Runtime) -> dict[str, int]:
    """Hand the send task every message that is due now and that no task is expected for:
    deferred ones whose time has come, and ones whose task was lost (a crash between commit
    and enqueue, or mid-send). Not every waiting one: a message just handed over, or whose
    retry is coming, is left to that task."""
    with rt.uow() as uow:
        ids = history.due(uow)
        uow.commit()
    for notification_id in ids:
        dispatch(notification_id)
    return {"dispatched": len(ids)}
