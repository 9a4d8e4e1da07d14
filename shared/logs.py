"""Logs: one JSON object a line from every process, with a correlation id, never a
personal datum.

:func:`configure` sends the standard library's records (ours, Celery's, uvicorn's) and
structlog's through one formatter: JSON lines by default, or plain text for a person at a
terminal (``SERVICEMONTH_LOG_FORMAT=text``). Whatever a request or an event has bound with
:func:`bound` (``request_id`` in HTTP, ``correlation_id`` in consumers, ``task_id`` in
workers) is in every line written meanwhile. The last step masks anything that looks like a
mainland ID number or mobile, so one that slips into a message or a traceback is not written
in clear.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any, TextIO

import structlog
from structlog.contextvars import bound_contextvars, merge_contextvars
from structlog.typing import EventDict, Processor, WrappedLogger

from shared.config import Settings

#: Libraries whose INFO lines are noise for an operator.
NOISY = ("httpx", "alembic", "kombu", "amqp", "celery", "fontTools", "uvicorn.error", "apscheduler")

#: An 18-character resident ID number (17 digits and a digit or X), not part of a longer
#: run of letters or digits (a UUID, a hash).
_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])(\d{6})\d{8}(\d{3}[\dXx])(?![0-9A-Za-z])")
#: An old 15-digit ID number, alone the same way.
_OLD_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])(\d{6})\d{5}(\d{4})(?![0-9A-Za-z])")
#: An 11-digit mainland mobile, optionally after +86 or 86, not inside a longer number; as
#: people write it too, in groups of 3-4-4 apart by a space or a dash.
_MOBILE = re.compile(
    r"(?<![0-9A-Za-z])((?:\+?86[ -]?)?1[3-9]\d)[ -]?\d{4}[ -]?(\d{4})(?![0-9A-Za-z])"
)


def mask_personal(text: str) -> str:
    """``text`` with ID numbers and mobiles masked (``410303********123X``,
    ``138****8000``)."""
    text = _ID_NUMBER.sub(r"\1********\2", text)
    text = _OLD_ID_NUMBER.sub(r"\1*****\2", text)
    return _MOBILE.sub(r"\1****\2", text)


def _masked(renderer: Processor) -> Processor:
    def render(logger: WrappedLogger, name: str, event_dict: EventDict) -> str:
        rendered = renderer(logger, name, event_dict)
        return mask_personal(rendered if isinstance(rendered, str) else str(rendered))

    return render


def _level_and_logger(logger: WrappedLogger, name: str, event_dict: EventDict) -> EventDict:
    # The logger's name, for stdlib records and structlog's alike.
    record = event_dict.get("_record")
    if record is not None and "logger" not in event_dict:
        event_dict["logger"] = record.name
    return event_dict


#: Fields a standard-library record may carry in ``extra`` (the access log's).
EXTRA_FIELDS = ("method", "route", "status", "duration_ms")


def _shared_steps() -> list[Processor]:
    return [
        merge_contextvars,
        structlog.stdlib.add_log_level,
        _level_and_logger,
        structlog.stdlib.ExtraAdder(allow=EXTRA_FIELDS),
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
    ]


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a line is written (a test runner or a
    daemon may swap it after logging was configured)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        super().__init__()
        self._fixed = stream

    @property
    def stream(self) -> TextIO | IO[str]:
        return self._fixed if self._fixed is not None else sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


def configure(config: Settings, stream: IO[str] | None = None, force: bool = False) -> None:
    """Log JSON lines (or text) at the configured level to ``stream`` (stderr).

    A process whose root logger already has someone else's handlers (a test runner) is left
    as it is unless ``force``; calling again replaces only what this function installed.
    """
    text = config.common.log_format == "text"
    renderer: Processor = (
        structlog.dev.ConsoleRenderer(colors=False)
        if text
        else structlog.processors.JSONRenderer(ensure_ascii=False, default=str)
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_steps(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _masked(renderer),
        ],
    )
    structlog.configure(
        processors=[
            *_shared_steps(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, "servicemonth", False)]
    if len(ours) < len(root.handlers) and not force:
        return
    for handler in ours:
        root.removeHandler(handler)
    handler = _Stderr(stream)
    handler.servicemonth = True  # type: ignore[attr-defined]
    handler.setFormatter(formatter)
    root.addHandler(handler)
    root.setLevel(config.log_level)
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)


def unconfigure() -> None:
    """Take away the handler :func:`configure` installed (tests)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "servicemonth", False)]:
        root.removeHandler(handler)


@contextmanager
def bound(**values: Any) -> Iterator[None]:
    """Every line logged in this block (this thread or task) carries ``values``."""
    with bound_contextvars(**{k: v for k, v in values.items() if v is not None}):
        yield
