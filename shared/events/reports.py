"""Reporting's events: a summary report is ready for its subscriber."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.events.envelope import Event
from shared.events.members import SealedContact


class ReportFile(BaseModel):
    """One file of a generated report, relative to the reports folder."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    media_type: str


class ReportGenerated(Event):
    """A summary report for one subscription and period is ready (notify delivers it).

    ``recipient`` is the subscriber's contact (name, phone, e-mail), sealed for notify;
    ``channels`` are the ones the subscriber chose; ``files`` lie under the deployment's
    reports folder. ``failed`` says the run gave up, so the subscriber hears that instead
    of nothing.
    """

    TYPE = "report.generated"

    report_id: uuid.UUID
    subscription_id: uuid.UUID | None = None
    scope: str
    period_start: datetime
    period_end: datetime
    title: str
    headline: str
    files: list[ReportFile] = Field(default_factory=list)
    recipient: SealedContact | None = None
    channels: list[Literal["sms", "email"]] = Field(default_factory=list)
    failed: bool = False
