"""Child processes of the composition root (``up``, the demo) that never outlive it."""

from __future__ import annotations

import ctypes
import signal
import subprocess
import time

_PR_SET_PDEATHSIG = 1
# Looked up once, in the parent: between fork and exec a child of a process with threads
# (``up`` starts children from its supervisor thread) must not load or look up symbols.
_PRCTL = ctypes.CDLL("libc.so.6", use_errno=True).prctl


def die_with_parent() -> None:
    """Ask Linux to stop this child (SIGTERM) when its parent dies, however it dies (the
    parent being, to Linux, the thread that started it)."""
    _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


def stop_children(children: list[subprocess.Popen[bytes]], timeout: float = 15.0) -> None:
    """SIGTERM to each child still running; SIGKILL to any not gone within ``timeout``."""
    for child in children:
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + timeout
    for child in children:
        try:
            child.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
