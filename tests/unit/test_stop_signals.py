"""A long-running process (consume, scheduler) stops on SIGTERM whatever its main thread was
doing when the signal landed."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# The main thread holds the stop event's lock (as inside Event.wait or an earlier set) when
# SIGTERM arrives: the state py-spy showed in a consume process that ignored every SIGTERM.
SCRIPT = textwrap.dedent(
    """
    import signal
    from services.runner import stop_on_signals

    stop = stop_on_signals()
    with stop._cond:
        signal.raise_signal(signal.SIGTERM)
    print("stopped" if stop.wait(5) else "not stopped")
    """
)


def test_a_signal_landing_while_the_stop_event_is_busy_still_stops_the_process() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=30
    )
    assert done.stdout.strip() == "stopped", done.stderr[-2000:]
