"""Sign-in messages: the code someone asked for, and the warning to an ID number's holder.

Both come from registration's ``auth.*`` events. The code travels and rests sealed: the
message's params keep ``code_sealed`` and :func:`open_code` opens it only to render the SMS,
so neither the database nor the history holds it in clear.
"""

from __future__ import annotations

from typing import Any

from services.notify.bulk import queue_message
from services.notify.messages import Dispatch, Recipient
from shared.db import UnitOfWork
from shared.events import Envelope, IdNumberTried, SignInCodeRequested
from shared.pii import Sealer

SEALED_CODE = "code_sealed"


def send_sign_in_code(
    event: SignInCodeRequested, envelope: Envelope, uow: UnitOfWork, *, dispatch: Dispatch
) -> None:
    """验证码 — at once: urgent (no quiet hours) to a sealed number (no cap, no digest)."""
    minutes = max(1, round((event.expires_at - envelope.occurred_at).total_seconds() / 60))
    queue_message(
        uow,
        dispatch=dispatch,
        recipient=Recipient.subscriber(
            event.request_id, event.contact.sealed, event.contact.phone_masked
        ),
        kind="sign_in_code",
        subject=str(event.request_id),
        slot="-",
        params={SEALED_CODE: event.code, "minutes": minutes},
        channel="sms",
        correlation_id=envelope.correlation_id,
    )


def open_code(params: dict[str, Any], sealer: Sealer) -> None:
    """Put the clear code into ``params`` for rendering (the stored params stay sealed)."""
    sealed = params.pop(SEALED_CODE, None)
    if sealed:
        params["code"] = sealer.open(str(sealed), SignInCodeRequested.CODE_CONTEXT)


def tell_id_number_holder(
    event: IdNumberTried, envelope: Envelope, uow: UnitOfWork, *, dispatch: Dispatch
) -> None:
    """The holder hears that someone tried their ID number (once per attempt)."""
    queue_message(
        uow,
        dispatch=dispatch,
        recipient=Recipient.member(event.member_id),
        kind="id_number_tried",
        subject=str(envelope.id),
        slot="-",
        params={},
        channel="sms",
        correlation_id=envelope.correlation_id,
    )
