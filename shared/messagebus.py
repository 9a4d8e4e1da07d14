"""Commands, events and the handler table every service runs its use cases through.

The shape follows cosmicpython's: a *command* is a small frozen type naming what a caller
asks for (``ConfirmRegistration``), an *event* (``shared.events``) says what happened. Each
service's ``handlers.py`` holds its one table — which function handles which command, which
functions apply which event — and its ``bootstrap.py`` builds the :class:`MessageBus` with
the service's dependencies. Entrypoints (routes, Celery tasks, the consume process, the
scheduler's jobs) only turn their input into a command and call :meth:`MessageBus.handle`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from shared.db import UnitOfWork
from shared.events import Envelope, Event

R = TypeVar("R")
D = TypeVar("D")
E = TypeVar("E", bound=Event)


@dataclass(frozen=True, kw_only=True)
class Command(Generic[R]):
    """Something a caller asks a service to do; ``R`` is what handling it returns."""


#: Applies one event inside the consumer's unit of work (the inbox commits with it).
EventHandler = Callable[[E, Envelope, UnitOfWork], None]
#: Applies several events, in order, inside one unit of work (:meth:`EventTable.in_runs`).
RunHandler = Callable[[Sequence[tuple[Event, Envelope]], UnitOfWork], None]


class EventTable(Mapping[type[Event], list[EventHandler[Any]]]):
    """Which functions apply which event, in order. :meth:`on` checks, for the type
    checker, that each handler takes the event it is registered for."""

    def __init__(self) -> None:
        self._table: dict[type[Event], list[EventHandler[Any]]] = {}
        #: what applies a run of consecutive events of :attr:`run_types` at once
        self.run_handler: RunHandler | None = None
        self.run_types: frozenset[str] = frozenset()
        #: (model, event attribute): rows the handlers find by that attribute (:meth:`looks_up`)
        self.lookups: tuple[tuple[type[Any], str], ...] = ()

    def on(self, event: type[E], *handlers: EventHandler[E]) -> EventTable:
        if event.TYPE in self.run_types:  # a run would skip them
            raise ValueError(f"{event.TYPE} is applied in runs: give it no other handler")
        self._table.setdefault(event, []).extend(handlers)
        return self

    def in_runs(
        self,
        apply: RunHandler,
        *events: type[Event],
    ) -> EventTable:
        """``apply`` handles ``events``, given several at once where it can: a consumer
        hands it each run of consecutive ones among the deliveries it applies together (in
        order, in their one unit of work), and one alone otherwise. For a service whose
        handlers cost a few queries each that one set-based pass can do for the run. Those
        events have no other handler (it would be skipped in a run): refused either way."""
        if self.run_handler is not None and self.run_handler is not apply:
            raise ValueError("a table has one run handler")

        def one(event: Event, envelope: Envelope, uow: UnitOfWork) -> None:
            apply([(event, envelope)], uow)

        for event in events:
            if event in self._table:
                raise ValueError(f"{event.TYPE} has handlers already: a run would skip them")
            self.on(event, one)
        self.run_handler = apply
        self.run_types = self.run_types | {e.TYPE for e in events}
        return self

    def looks_up(self, *models: type[Any], by: str) -> EventTable:
        """The handlers find rows of ``models`` (``uow.find``) by the primary key an event
        carries as ``by``: a consumer applying several events together reads those rows
        for all of them first, in one query per model (``UnitOfWork.preload``), instead of
        one query per event and model."""
        self.lookups = self.lookups + tuple((model, by) for model in models)
        return self

    def __getitem__(self, event: type[Event]) -> list[EventHandler[Any]]:
        return self._table[event]

    def __iter__(self) -> Iterator[type[Event]]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)


class CommandTable(Generic[D]):
    """Which function handles which command; one handler per command."""

    def __init__(self, table: Mapping[type[Command[Any]], Callable[[Any, D], Any]] | None = None):
        self._table: dict[type[Command[Any]], Callable[[Any, D], Any]] = dict(table or {})

    def __contains__(self, command: object) -> bool:
        return command in self._table

    def handler(self, command: type[Command[Any]]) -> Callable[[Any, D], Any]:
        try:
            return self._table[command]
        except KeyError:
            raise LookupError(f"no handler for {command.__name__}") from None


class MessageBus(Generic[D]):
    """One service's use cases behind one door: ``bus.handle(command)`` runs its handler
    with the service's dependencies ``deps`` (built by the service's ``bootstrap.py``)."""

    def __init__(self, commands: CommandTable[D], deps: D) -> None:
        self.commands = commands
        self.deps = deps

    def handle(self, command: Command[R]) -> R:
        result: R = self.commands.handler(type(command))(command, self.deps)
        return result
