"""Registration's staff events: an account for an operator, a unit organiser, community
staff or a leader was saved or disabled.

Notify keeps the contacts it sends to staff from these (entered once, in registration);
the contact travels sealed like a member's (:class:`SealedContact`), the name masked.
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import Field

from shared.events.envelope import District, Event
from shared.events.members import SealedContact

StaffRole = Literal["operator", "unit", "community", "leader"]


class StaffAccountSaved(Event):
    """A staff account was created, changed (name, e-mail) or enabled again: the full
    picture, so the latest one is all a replica needs."""

    TYPE = "staff.saved"

    account_id: uuid.UUID
    role: StaffRole
    scope: str = Field(min_length=4, max_length=60)
    #: The account's district (None for a city-scope leader).
    district: District | None = None
    state: Literal["active", "disabled"] = "active"
    contact: SealedContact
    #: The name masked (李*); the name in clear is only inside ``contact``.
    name_masked: str = Field(max_length=60)


class StaffAccountDisabled(Event):
    """A staff account was disabled: its sessions are revoked and it hears nothing more."""

    TYPE = "staff.disabled"

    account_id: uuid.UUID
