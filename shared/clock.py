"""Time, real or simulated.

Services ask a :class:`Clock` for ``now()`` instead of calling ``datetime.now``, so the demo
and the tests can drive a whole campaign month in seconds. A simulated clock can live in a
file so that every process of a deployment sees the same simulated time.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol


class Clock(Protocol):
    """Something that tells the current time (timezone-aware, UTC)."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real time."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class SimulatedClock:
    """A clock that only moves when told to.

    With ``path``, the time is kept in that file so other processes reading the same file
    agree on it; without, it lives in memory.
    """

    def __init__(self, start: datetime, path: Path | None = None) -> None:
        if start.tzinfo is None:
            raise ValueError("a simulated clock needs a timezone-aware start")
        self._path = path
        self._now = start.astimezone(UTC)
        if path is not None and not path.exists():
            self.set(start)

    def now(self) -> datetime:
        if self._path is not None:
            return datetime.fromisoformat(self._path.read_text().strip())
        return self._now

    def set(self, when: datetime) -> None:
        self._now = when.astimezone(UTC)
        if self._path is not None:
            tmp = self._path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(self._now.isoformat())
            os.replace(tmp, self._path)

    def advance(self, delta: timedelta) -> datetime:
        self.set(self.now() + delta)
        return self.now()


def clock_for(path: Path | None) -> Clock:
    """The clock of a process: simulated from ``path`` when one is configured."""
    if path is None:
        return SystemClock()
    if not path.exists():
        raise FileNotFoundError(f"SERVICEMONTH_CLOCK_FILE {path} does not exist")
    return SimulatedClock(datetime.fromisoformat(path.read_text().strip()), path)
