"""Notify's HTTP API types: what its routes take and answer (what OpenAPI describes).

Times are ISO 8601 strings as the routes have always written them; addresses are masked
strings (``138****8000``, ``z***@example.cn``), never in clear.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from shared.http import FromRow, Text

# --- staff contacts ----------------------------------------------------------------------------


class StaffContactOut(FromRow):
    """A staff contact as notify keeps it (registration's staff account, masked)."""

    id: Text
    state: str
    role: str
    scope: str
    name: str = Field(validation_alias="name_masked")
    phone: str | None = Field(validation_alias="phone_masked")
    email: str | None = Field(validation_alias="email_masked")
    sms: bool = Field(validation_alias="sms_enabled")
    email_enabled: bool


# --- members' preferences and messages ---------------------------------------------------------


class PreferencesIn(BaseModel):
    """The channels a member accepts; a field left out stays as it is."""

    model_config = ConfigDict(extra="forbid")

    sms: bool | None = None
    email: bool | None = None


class PreferencesOut(BaseModel):
    member_id: str
    sms: bool
    email: bool


class HistoryLineOut(BaseModel):
    """One line of a message's history."""

    at: str
    status: str
    provider: str | None
    reference: str | None
    error: str | None
    detail: str | None


class MessageOut(BaseModel):
    """A message as people may see it: masked address, no parameters, its history."""

    id: str
    kind: str
    channel: str
    status: str
    to: str | None
    member_id: str | None
    urgent: bool
    due_at: str | None
    provider: str | None
    provider_ref: str | None
    attempts: int
    segments: int
    merged_into: str | None
    correlation_id: str | None
    created_at: str
    sent_at: str | None
    history: list[HistoryLineOut]


# --- provider webhooks ---------------------------------------------------------------------------


class CallbackAnswer(BaseModel):
    """The shape both providers accept as "received" (Aliyun ``code``/``msg``, Tencent
    ``result``/``errmsg``)."""

    code: int = 0
    msg: str = "成功"
    result: int = 0
    errmsg: str = "OK"


class ReceiptsOut(CallbackAnswer):
    """``counts``: how many reports were applied, unchanged or unknown."""

    counts: dict[str, int]


class RepliesOut(CallbackAnswer):
    """``opted_out``: how many contacts stopped getting SMS."""

    opted_out: int


# --- operators -----------------------------------------------------------------------------------


class SweepOut(BaseModel):
    """What the sweep did: reminder messages queued per job, the slots skipped, and how
    many due messages were handed to the send task."""

    reminders: dict[str, int]
    skipped: list[str]
    dispatched: int


class ReminderSlotOut(BaseModel):
    """One slot of the reminder calendar and its state (pending, sent, skipped, superseded)."""

    job: str
    kind: str
    audience: str
    slot: str
    due_at: str
    state: str
    messages: int | None


class SummaryOut(BaseModel):
    """Messages per kind and status; SMS and e-mails gone; quiet hours and caps at work."""

    per_kind: dict[str, dict[str, int]]
    sent: dict[str, int]
    sms_segments: int
    deferred_by_quiet_hours: int
    merged_by_caps: int
