"""Registration's sign-in events: a code to send, a session revoked, an ID number tried.

No code, token or mobile travels in clear: the code and the number are sealed for notify
(the one service that sends), and a revocation names only a token id or a subject.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import ClassVar

from shared.events.envelope import Event
from shared.events.members import SealedContact


class SignInCodeRequested(Event):
    """验证码 — send this sign-in code to this number now (urgent: no quiet hours, caps or
    digests). ``code`` is sealed under :attr:`CODE_CONTEXT`; notify keeps no clear copy."""

    TYPE = "auth.code_requested"
    CODE_CONTEXT: ClassVar[str] = "sign-in-code"

    request_id: uuid.UUID
    contact: SealedContact
    code: str
    expires_at: datetime


class TokensRevoked(Event):
    """Tokens stop working: one token (``jti:ID``: a sign-out, ``token revoke``) or every
    token of a subject issued up to ``revoked_at`` (``sub:HASH``: a disabled account).
    Every service records it and refuses those tokens from then on."""

    TYPE = "auth.revoked"

    key: str
    revoked_at: datetime
    expires_at: datetime | None = None


class IdNumberTried(Event):
    """Someone signed in with another phone tried to register this member's ID number: the
    holder is told (by SMS), the caller learned nothing."""

    TYPE = "auth.id_number_tried"

    member_id: uuid.UUID
