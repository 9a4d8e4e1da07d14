"""The events reporting listens to (all of them), and what it does with each."""

from __future__ import annotations

from services.reporting import handlers
from shared.bus import Handler
from shared.events import Event, MemberRegistered
from shared.runtime import Runtime


def handlers_for(rt: Runtime) -> dict[type[Event], list[Handler]]:
    return {MemberRegistered: [handlers.count_member]}
