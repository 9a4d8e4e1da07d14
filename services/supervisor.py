"""Keeping the long-running processes alive: heartbeats, and ``up``'s supervisor.

Every consumer, worker and scheduler writes a heartbeat file under
``$SERVICEMONTH_HOME/heartbeat/`` (its host, what it is; the file holds its process id) a
few times a minute while it works. ``servicemonth alive consume SERVICE`` (``worker
SERVICE``, ``scheduler``) reads it: a systemd or Compose health check needs no HTTP.

``servicemonth up`` starts its children through :class:`Supervisor`, which restarts one
that dies (after 1 s, doubling to 30 s while it keeps dying; back to 1 s once it has stayed
up a minute), logs each death and restart, reaps every child it loses (no zombies), and
tells ``/readyz`` which children are not running.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from services.processes import die_with_parent, stop_children

log = logging.getLogger(__name__)

#: How often a process writes its heartbeat, and how old one may be and still count.
BEAT_EVERY = 5.0
MAX_AGE = 30.0


def heartbeat_path(home: Path, kind: str, service: str | None = None) -> Path:
    """Where this host's ``kind`` process (``consume``, ``worker``, ``scheduler``) of
    ``service`` beats. The host is in the name: a home shared by several machines or
    containers keeps one file per process."""
    name = ".".join(p for p in (socket.gethostname(), kind, service) if p)
    return home / "heartbeat" / name


def beating_pid(path: Path) -> int | None:
    """The process id a heartbeat file names, or None when there is none."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def alive(path: Path, max_age: float = MAX_AGE) -> bool:
    """Whether the heartbeat at ``path`` is fresh and its process still exists."""
    try:
        age = time.time() - path.stat().st_mtime
    except OSError:
        return False
    pid = beating_pid(path)
    if pid is None or age > max_age:
        return False
    try:
        os.kill(pid, 0)  # a process killed since its last beat is seen at once
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    return True


class Heartbeat:
    """Writes ``path`` every ``every`` seconds while ``healthy()`` holds, from a thread of
    its own; the file goes when the process stops cleanly."""

    def __init__(self, path: Path, every: float = BEAT_EVERY) -> None:
        self.path = path
        self.every = every

    def beat(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        staging = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        staging.write_text(f"{os.getpid()}\n")
        os.replace(staging, self.path)  # a reader never sees a half-written file

    def keep(self, stop: threading.Event, healthy: Callable[[], bool] = lambda: True) -> None:
        """Beat until ``stop`` is set; a beat is skipped while ``healthy()`` is false, so
        the file goes stale when the work inside the process has stopped."""
        while True:
            if healthy():
                try:
                    self.beat()
                except OSError as exc:
                    log.warning("cannot write the heartbeat %s: %s", self.path, exc)
            if stop.wait(self.every):
                break
        self.forget()

    def forget(self) -> None:
        if beating_pid(self.path) == os.getpid():
            with contextlib.suppress(OSError):
                self.path.unlink()

    @contextlib.contextmanager
    def running(self, healthy: Callable[[], bool] = lambda: True) -> Iterator[None]:
        """Beat in the background for as long as the block runs."""
        stop = threading.Event()
        thread = threading.Thread(
            target=self.keep, args=(stop, healthy), name="heartbeat", daemon=True
        )
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)


def beat_while_working(app: object, path: Path) -> None:
    """Have a Celery worker of ``app`` beat at ``path`` from when it is ready to take
    tasks until it shuts down."""
    from celery.signals import worker_ready, worker_shutdown

    stop = threading.Event()
    heartbeat = Heartbeat(path)

    def ready(sender: object = None, **_: object) -> None:
        if getattr(sender, "app", app) is not app:
            return  # another app's worker in this process
        threading.Thread(target=heartbeat.keep, args=(stop,), name="heartbeat", daemon=True).start()

    def shutdown(sender: object = None, **_: object) -> None:
        if getattr(sender, "app", app) is not app:
            return
        stop.set()
        heartbeat.forget()

    worker_ready.connect(ready, weak=False)
    worker_shutdown.connect(shutdown, weak=False)


# --- up's supervisor ---------------------------------------------------------------------


@dataclass
class Child:
    """One supervised process: its command line (after ``servicemonth``), its heartbeat
    file, the process now running it, and when it is due to be started again."""

    argv: tuple[str, ...]
    heartbeat: Path
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    delay: float = 0.0
    restart_at: float | None = None
    last_exit: str = ""
    restarts: int = 0

    @property
    def name(self) -> str:
        return " ".join(self.argv)


def exit_reason(code: int) -> str:
    """How a child ended, from its return code (negative: the signal that killed it)."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


Spawn = Callable[[Sequence[str]], "subprocess.Popen[bytes]"]


def spawn_cli(argv: Sequence[str]) -> subprocess.Popen[bytes]:
    """``servicemonth ARGV`` as a child that dies with this process's supervising thread.

    It gets a process group of its own: Ctrl-C in a terminal reaches ``up`` alone, which
    then stops its children, instead of every child at once (to be restarted meanwhile).
    """
    return subprocess.Popen(
        [sys.executable, "-m", "services.cli", *argv],
        preexec_fn=die_with_parent,
        process_group=0,
    )


@dataclass
class Supervisor:
    """Starts ``up``'s background processes and keeps them running until :meth:`stop`."""

    home: Path
    commands: Sequence[tuple[str, ...]]
    first_delay: float = 1.0
    max_delay: float = 30.0
    stable_after: float = 60.0
    check_every: float = 0.2
    max_age: float = MAX_AGE
    spawn: Spawn = spawn_cli
    children: list[Child] = field(init=False)
    _stopping: threading.Event = field(init=False, default_factory=threading.Event)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    _thread: threading.Thread | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.children = [
            Child(
                argv=argv,
                heartbeat=heartbeat_path(self.home, argv[0], argv[1] if len(argv) > 1 else None),
                delay=self.first_delay,
                restart_at=0.0,
            )
            for argv in self.commands
        ]

    def start(self) -> None:
        """Start every child, then watch them from a thread of its own. The children are
        started from that thread: Linux ties a child's parent-death signal to the thread
        that started it, and this one lives until :meth:`stop`."""
        started = threading.Event()
        self._thread = threading.Thread(
            target=self._watch, args=(started,), name="supervisor", daemon=True
        )
        self._thread.start()
        started.wait(timeout=30)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop watching (nothing is restarted from now on), then stop every child."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            running = [c.process for c in self.children if c.process is not None]
        stop_children(running, timeout)

    def status(self) -> dict[str, str]:
        """Per child: ``ok`` when it runs and has beaten since it started, else why not."""
        now = time.monotonic()
        found = {}
        with self._lock:
            for child in self.children:
                found[child.name] = self._describe(child, now)
        return found

    def _describe(self, child: Child, now: float) -> str:
        process = child.process
        if process is not None:
            code = process.poll()
            if code is not None:  # ended; the watcher has not seen it yet
                return f"down ({exit_reason(code)})"
            if beating_pid(child.heartbeat) != process.pid:
                return "starting"
            return "ok" if alive(child.heartbeat, self.max_age) else "running, but not beating"
        if child.restart_at is not None and not self._stopping.is_set():
            wait = max(child.restart_at - now, 0.0)
            return f"down ({child.last_exit}), restarting in {wait:.0f} s"
        return f"down ({child.last_exit or 'stopped'})"

    def _watch(self, started: threading.Event) -> None:
        while not self._stopping.is_set():
            try:
                self._check()
            except Exception:  # the watcher must outlive any one failure
                log.exception("supervisor: checking the children failed")
            started.set()
            self._stopping.wait(self.check_every)

    def _check(self) -> None:
        now = time.monotonic()
        with self._lock:
            for child in self.children:
                if self._stopping.is_set():
                    return
                process = child.process
                if process is not None:
                    code = process.poll()  # reaps a child that has ended: no zombie stays
                    if code is None:
                        self._stuck(child, process)
                        continue
                    self._lost(child, process.pid, code, now)
                if child.restart_at is not None and now >= child.restart_at:
                    self._start(child, now)

    def _stuck(self, child: Child, process: subprocess.Popen[bytes]) -> None:
        """A child that has beaten since it started and then stopped beating is hung (a
        loop inside it died, or it waits forever): kill it, and it is started again."""
        if beating_pid(child.heartbeat) == process.pid and not alive(child.heartbeat, self.max_age):
            log.warning(
                "supervisor: %s (pid %d) stopped beating; killing it", child.name, process.pid
            )
            process.kill()

    def _lost(self, child: Child, pid: int, code: int, now: float) -> None:
        up_for = now - child.started
        if up_for >= self.stable_after:
            child.delay = self.first_delay  # it had settled: this death is news, not a loop
        child.process = None
        child.last_exit = exit_reason(code)
        child.restart_at = now + child.delay
        log.warning(
            "supervisor: %s (pid %s) stopped after %.0f s: %s; restarting in %.1f s",
            child.name,
            pid,
            up_for,
            child.last_exit,
            child.delay,
        )
        child.delay = min(child.delay * 2, self.max_delay)

    def _start(self, child: Child, now: float) -> None:
        try:
            child.process = self.spawn(child.argv)
        except OSError as exc:
            child.last_exit = f"could not start: {exc}"
            child.restart_at = now + child.delay
            log.error("supervisor: cannot start %s: %s", child.name, exc)
            child.delay = min(child.delay * 2, self.max_delay)
            return
        child.started = now
        child.restart_at = None
        if child.last_exit:
            child.restarts += 1
            log.warning(
                "supervisor: restarted %s (pid %d, restart %d)",
                child.name,
                child.process.pid,
                child.restarts,
            )


def background_commands(services: Sequence[str], scheduler: bool) -> list[tuple[str, ...]]:
    """What ``up`` runs besides HTTP: each service's consumer and worker, and the
    scheduler unless left out."""
    commands: list[tuple[str, ...]] = [
        (command, name) for name in services for command in ("consume", "worker")
    ]
    if scheduler:
        commands.append(("scheduler",))
    return commands
