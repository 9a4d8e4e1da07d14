"""What a service needs at run time, made once per process: settings, database, clock."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sqlalchemy import MetaData

from shared.clock import Clock, clock_for
from shared.config import Settings, settings
from shared.db import Database, UnitOfWork
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
            self._sealer = Sealer(self.settings.pii_key())
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
