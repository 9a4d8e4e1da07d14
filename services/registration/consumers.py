"""Registration listens to no event: it is where members enter the system."""

from __future__ import annotations

from shared.bus import Handler
from shared.events import Event
from shared.runtime import Runtime


def handlers_for(rt: Runtime) -> dict[type[Event], list[Handler]]:
    return {}
