"""What notify's handlers are given (:class:`Notify`): the runtime, how a committed message
reaches the send task, and the sender (providers, e-mail channel, rules). Built by
:mod:`services.notify.bootstrap`; tests build their own with fakes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from services.notify.messages import Dispatch
from services.notify.rules import Rules
from services.notify.sending import Sender
from shared.runtime import Runtime


@dataclass
class Notify:
    """Notify's dependencies: ``runtime`` (settings, database, clock, sealer), ``dispatch``
    (hands a committed message to the send task) and the :class:`Sender`, made from the
    runtime's settings by ``make_sender`` on first use (its providers are clients a process
    keeps)."""

    runtime: Runtime
    dispatch: Dispatch
    make_sender: Callable[[Runtime], Sender]
    _sender: Sender | None = field(default=None, repr=False)

    @property
    def sender(self) -> Sender:
        if self._sender is None:
            self._sender = self.make_sender(self.runtime)
        return self._sender

    @property
    def rules(self) -> Rules:
        """How messages are paced (``settings.notify``)."""
        return Rules.from_settings(self.runtime.settings)
