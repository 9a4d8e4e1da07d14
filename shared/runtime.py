"""What a service needs at run time, made once per process: settings, database, clock."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sqlalchemy import MetaData

from shared.clock import Clock, clock_for
from shared.config import Settings, settings
from shared.db import Database, UnitOfWork
from shared.messagebus import CommandTable, MessageBus
from shared.pii import Sealer


@dataclass
class Runtime:
    """One service's dependencies; tests build their own instead of the process-wide one."""

    service: str
    settings: Settings
    db: Database
    clock: Clock
    _sealer: Sealer | None = field(default=None, repr=False)

    def uow(self, correlation_id: uuid.UUID | None = None, read_only: bool = False) -> UnitOfWork:
        return UnitOfWork(
            self.db,
            producer=self.service,
            campaign=self.settings.campaign,
            clock=self.clock,
            correlation_id=correlation_id,
            read_only=read_only,
        )

    def read(self) -> UnitOfWork:
        """A unit of work for reads only: on SQLite it never takes the write lock, so reads
        are answered while an import writes."""
        return self.uow(read_only=True)

    @property
    def sealer(self) -> Sealer:
        if self._sealer is None:
            keys = self.settings.pii_keys()
            self._sealer = Sealer.from_keys(keys.keys, keys.lookup, keys.current)
        return self._sealer


def build(service: str, metadata: MetaData, config: Settings | None = None) -> Runtime:
    config = config or settings()
    return Runtime(
        service=service,
        settings=config,
        db=Database(config.database_url(service), metadata),
        clock=clock_for(config.clock_file),
    )


_RUNTIMES: dict[str, Runtime] = {}


def given(
    service: str, metadata: MetaData, config: Settings | None, runtime: Runtime | None
) -> Runtime:
    """What a service's ``bootstrap`` runs over: ``runtime`` when given, else one built from
    ``config``, else the process-wide one."""
    if runtime is not None:
        return runtime
    return build(service, metadata, config) if config is not None else get(service, metadata)


def get(service: str, metadata: MetaData) -> Runtime:
    """The process-wide runtime of ``service`` (made on first use, after any fork)."""
    if service not in _RUNTIMES:
        _RUNTIMES[service] = build(service, metadata)
    return _RUNTIMES[service]


def override(service: str, runtime: Runtime | None) -> None:
    """Replace (or forget, with None) the process-wide runtime of ``service``."""
    if runtime is None:
        _RUNTIMES.pop(service, None)
    else:
        _RUNTIMES[service] = runtime


@dataclass(frozen=True)
class Bootstrap:
    """How a service whose handlers need only its runtime is built (registration, pairing,
    reporting; notify adds its providers and dispatch): its ``bootstrap.py`` names these
    three methods as its own functions."""

    service: str
    metadata: MetaData
    commands: CommandTable[Runtime]

    def bootstrap(
        self, settings: Settings | None = None, *, runtime: Runtime | None = None
    ) -> MessageBus[Runtime]:
        """The bus over ``runtime`` (or one built from ``settings``, or the process-wide
        one when neither is given)."""
        return MessageBus(self.commands, given(self.service, self.metadata, settings, runtime))

    def runtime(self) -> Runtime:
        """The process-wide runtime, made on first use (after any fork)."""
        return get(self.service, self.metadata)

    def bus(self) -> MessageBus[Runtime]:
        """The process-wide bus (a bus is only the table and its dependencies, so one is
        made per call and an override is seen at once)."""
        return self.bootstrap(runtime=self.runtime())
