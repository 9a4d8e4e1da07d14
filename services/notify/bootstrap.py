"""Builds notify: its runtime (settings, database, clock, sealer), the SMS providers and the
e-mail channel the settings name, the dispatch that hands committed messages to the send
task, and the message bus that runs its commands (:data:`services.notify.handlers.COMMANDS`)
with them.

Entrypoints never build dependencies themselves: routes take :func:`bus` and :func:`runtime`
as FastAPI dependencies, the Celery tasks call :func:`bus`, the consume process hands its
runtime to :func:`bootstrap`. Tests pass their own parts to :func:`bootstrap`
(``dispatch=``, ``sender=``), install a runtime with ``shared.runtime.override`` (which
:func:`runtime` and :func:`bus` then use), or put a dispatch in place for a block with
:func:`replaced` — the seam for what the consume process and the routes queue while a test
applies events through them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from services.notify import NAME, handlers
from services.notify.batch import SEND_BATCH_TASK
from services.notify.channels.factory import email_channel, sms_providers
from services.notify.deps import Notify
from services.notify.messages import Dispatch, celery_dispatch
from services.notify.models import Base
from services.notify.report_files import HttpReportFiles
from services.notify.rules import Rules
from services.notify.sending import Sender
from shared import runtime as shared_runtime
from shared.config import Settings
from shared.messagebus import MessageBus
from shared.runtime import Runtime

__all__ = ["Notify", "bootstrap", "build_sender", "bus", "replaced", "report_files", "runtime"]


def report_files(settings: Settings) -> HttpReportFiles:
    """Report files from reporting's API at ``SERVICEMONTH_REPORTING_URL`` (default: this
    machine's HTTP port, what ``servicemonth up`` serves), with the report-files token."""
    base = settings.notify.reporting_url or f"http://127.0.0.1:{settings.http_port}"
    return HttpReportFiles(base, settings.report_files_token())


def build_sender(rt: Runtime) -> Sender:
    """The providers, channels and rules of ``rt``'s settings, and where report files
    come from."""
    return Sender(
        sealer=rt.sealer,
        providers=list(sms_providers(rt.settings, rt.clock)),
        email=email_channel(rt.settings, rt.clock),
        rules=Rules.from_settings(rt.settings),
        district=rt.settings.district,
        reports=report_files(rt.settings),
    )


@dataclass
class _Process:
    """This process's own parts: its bus (made on first use, after any fork, again when the
    runtime is replaced) and the dispatch a test put in place (:func:`replaced`)."""

    bus: MessageBus[Notify] | None = None
    dispatch: Dispatch | None = None


_PROCESS = _Process()


class _DefaultDispatch:
    """Notify's send tasks on the deployment's broker — one message, or a batch of them
    (:data:`.batch.SEND_BATCH_TASK`) — or, while a test replaced the dispatch, the test's
    (looked up at each hand-over: a consumer built before the test's block sees it)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.celery = celery_dispatch(settings)

    def __call__(self, notification_id: uuid.UUID) -> None:
        (_PROCESS.dispatch or self.celery)(notification_id)

    def many(self, notification_ids: Sequence[uuid.UUID]) -> None:
        replaced_by = _PROCESS.dispatch
        if replaced_by is not None:
            for notification_id in notification_ids:
                replaced_by(notification_id)
            return
        from shared.workers import send_task

        send_task("notify", self.settings, SEND_BATCH_TASK, [str(i) for i in notification_ids])


def _default_dispatch(settings: Settings) -> Dispatch:
    return _DefaultDispatch(settings)


def bootstrap(
    settings: Settings | None = None,
    *,
    runtime: Runtime | None = None,
    dispatch: Dispatch | None = None,
    sender: Sender | None = None,
) -> MessageBus[Notify]:
    """Notify's bus over ``runtime`` (or one built from ``settings``, or the process-wide
    one when neither is given), handing messages over with ``dispatch`` (default: the send
    task) and sending with ``sender`` (default: built from the settings on first use)."""
    runtime = shared_runtime.given(NAME, Base.metadata, settings, runtime)
    deps = Notify(
        runtime=runtime,
        dispatch=dispatch or _default_dispatch(runtime.settings),
        make_sender=build_sender,
        _sender=sender,
    )
    return MessageBus(handlers.COMMANDS, deps)


def runtime() -> Runtime:
    """The process-wide runtime of notify, made on first use (after any fork)."""
    return shared_runtime.get(NAME, Base.metadata)


def bus() -> MessageBus[Notify]:
    """The process-wide bus, over :func:`runtime`: made once (its sender's providers are
    clients the process keeps), again when the runtime was replaced."""
    rt = runtime()
    current = _PROCESS.bus
    if current is None or current.deps.runtime is not rt:
        current = _PROCESS.bus = bootstrap(runtime=rt)
    return current


@contextmanager
def replaced(*, dispatch: Dispatch) -> Iterator[None]:
    """Within the block, messages that every bus of this process queues are handed to
    ``dispatch`` instead of the send task (tests collect them and play the worker)."""
    before = _PROCESS.dispatch
    _PROCESS.dispatch = dispatch
    try:
        yield
    finally:
        _PROCESS.dispatch = before
