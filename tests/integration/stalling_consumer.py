"""A pairing consumer that receives an event and stalls before committing (to be killed).

Run by test_event_delivery with the backend's environment; writes the marker file once
the event is in hand, inside the unit of work, then waits forever.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

from services.pairing import handlers
from services.pairing.bootstrap import runtime
from shared.consumer import EventConsumer
from shared.events import MemberRegistered


def main(marker: Path) -> None:
    rt = runtime()

    def stall(event: MemberRegistered, envelope: Any, uow: Any) -> None:
        handlers.record_member(event, envelope, uow)
        uow.session.flush()
        marker.write_text(str(envelope.id))
        while True:
            time.sleep(60)

    consumer = EventConsumer(
        "pairing", rt.settings, {MemberRegistered: [stall]}, lambda env: rt.uow(env.id)
    )
    consumer.run(threading.Event())


if __name__ == "__main__":
    main(Path(sys.argv[1]))
