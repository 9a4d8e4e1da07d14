"""What every city-scale benchmark shares: its context and the one shape of its result.

A benchmark module under ``bench/`` that ``bench/run.py`` runs has a function
``measure(ctx: Context) -> list[Result]``. It measures our path and, in the same run, a
baseline doing the same irreducible work, and builds each row of the table with one of
:func:`slower`, :func:`throughput`, :func:`faster` or :func:`absolute`, so that the ratio
always means what the target says:

- ``slower``: our time over the baseline's time for the same work (target ``≤ 2×``);
- ``throughput``: our rate over the baseline's rate (target ``≥ 0.5×``);
- ``faster``: the baseline's time over ours (target ``≥ 10×``);
- ``absolute``: a figure against a fixed bound (``≥ 10,000 events/s``, ``≤ 250 MB``).

Throw-away PostgreSQL databases come from :meth:`Context.database` (dropped at the end of
the run), scratch folders from :meth:`Context.folder`, the city from :attr:`Context.city`
(``bench/citygen.py``, generated once per run).
"""

from __future__ import annotations

import contextlib
import resource
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import citygen
import psutil
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
RABBITMQ = "amqp://guest:guest@127.0.0.1:5672//"


@dataclass(frozen=True)
class Result:
    """One row of the table."""

    path: str
    unit: str  # of ``ours`` and ``baseline``
    ours: float
    baseline: float | None
    ratio: float | None
    target: str
    met: bool | None  # None: reported, no target
    note: str = ""

    @property
    def verdict(self) -> str:
        return {True: "met", False: "MISSED", None: "—"}[self.met]


def slower(
    path: str, unit: str, ours: float, baseline: float, at_most: float, note: str = ""
) -> Result:
    """Rates (``unit`` per second) whose ratio is our *time* over the baseline's."""
    ratio = baseline / ours
    return Result(path, unit, ours, baseline, ratio, f"≤ {at_most:g}× time", ratio <= at_most, note)


def throughput(
    path: str, unit: str, ours: float, baseline: float, at_least: float, note: str = ""
) -> Result:
    """Rates whose ratio is ours over the baseline's."""
    ratio = ours / baseline
    return Result(
        path, unit, ours, baseline, ratio, f"≥ {at_least:g}× rate", ratio >= at_least, note
    )


def faster(path: str, ours_s: float, baseline_s: float, at_least: float, note: str = "") -> Result:
    """Seconds whose ratio is the baseline's time over ours (how many times faster)."""
    ratio = baseline_s / ours_s
    return Result(
        path, "s", ours_s, baseline_s, ratio, f"≥ {at_least:g}× faster", ratio >= at_least, note
    )


def absolute(
    path: str,
    unit: str,
    value: float,
    at_least: float | None = None,
    at_most: float | None = None,
    note: str = "",
) -> Result:
    """A figure against a fixed bound (or none: reported only)."""
    if at_least is not None:
        return Result(
            path, unit, value, None, None, f"≥ {at_least:,g} {unit}", value >= at_least, note
        )
    if at_most is not None:
        return Result(
            path, unit, value, None, None, f"≤ {at_most:,g} {unit}", value <= at_most, note
        )
    return Result(path, unit, value, None, None, "—", None, note)


@dataclass
class Context:
    """One run of the benchmarks: the scale, the city and what to clean up at the end."""

    scale: float
    seed: int = 1
    postgres: str | None = PG_ADMIN  # None: embedded (SQLite) only
    rabbitmq: str | None = RABBITMQ  # None: the filesystem broker only
    _cleanup: list[Callable[[], None]] = field(default_factory=list)

    @cached_property
    def city(self) -> citygen.City:
        return citygen.generate(self.scale, self.seed)

    def members(self) -> int:
        return self.city.counts["members"]

    def folder(self, name: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
        self._cleanup.append(lambda: shutil.rmtree(path, ignore_errors=True))
        return path

    def database(self, name: str) -> str:
        """A new empty PostgreSQL database (its URL), dropped when the run ends."""
        assert self.postgres, "this run has no PostgreSQL"
        database = f"bench_{name}_{secrets.token_hex(3)}"
        admin = create_engine(self.postgres, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{database}"'))

        def drop() -> None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            admin.dispose()

        self._cleanup.append(drop)
        return make_url(self.postgres).set(database=database).render_as_string(hide_password=False)

    def close(self) -> None:
        while self._cleanup:
            with contextlib.suppress(Exception):
                self._cleanup.pop()()


def figure(value: float | None, unit: str = "") -> str:
    if value is None:
        return ""
    if unit == "s":
        return f"{value:.3g} s" if value < 10 else f"{value:,.0f} s"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return f"{text} {unit}".strip()


def table(results: Sequence[Result]) -> str:
    head = ("path", "ours", "baseline", "ratio", "target", "verdict")
    rows = [
        (
            r.path,
            figure(r.ours, r.unit),
            figure(r.baseline, r.unit),
            "" if r.ratio is None else f"{r.ratio:.2f}×",
            r.target,
            r.verdict,
        )
        for r in results
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    notes = [f"- {r.path}: {r.note}" for r in results if r.note]
    return "\n".join(lines + (["", *notes] if notes else []))


def show(ctx: Context, measure: Callable[[Context], list[Result]]) -> None:
    """A benchmark run alone (its ``main``): ``measure(ctx)``'s rows as the table of
    ``bench/run.py``; the context closed whatever happens."""
    try:
        print(table(measure(ctx)))
    finally:
        ctx.close()


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds ``fn`` took, and what it returned."""
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


@contextlib.contextmanager
def peak_rss(
    pids: Callable[[], list[int]] | None = None, every: float = 0.05
) -> Iterator[dict[str, float]]:
    """Peak resident memory in MB while the block runs: of this process (``pids`` None, its
    own high-water mark) or of the processes ``pids()`` names (sampled)."""
    found: dict[str, float] = {"mb": 0.0}
    if pids is None:
        yield found
        found["mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for pid in pids():
                with contextlib.suppress(psutil.Error):
                    found["mb"] = max(found["mb"], psutil.Process(pid).memory_info().rss / 2**20)
            done.wait(every)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield found
    finally:
        done.set()
        sampler.join()
