"""Alembic, one migration history per service, run by ``servicemonth migrate``.

Each service keeps its history in ``services/<name>/migrations``; its ``env.py`` only
names the service's metadata and calls :func:`run_env`.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command, context, op
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, create_engine, text
from sqlalchemy.engine import make_url

from shared.db import Database

SERVICES_DIR = Path(__file__).resolve().parent.parent / "services"


def alembic_config(service: str, db: Database) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(SERVICES_DIR / service / "migrations"))
    cfg.set_main_option("sqlalchemy.url", db.url.replace("%", "%%"))
    cfg.attributes["database"] = db
    return cfg


def ensure_database(url: str) -> bool:
    """Create the PostgreSQL database of ``url`` if it is missing; True when created."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql" or not parsed.database:
        return False
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": parsed.database}
            )
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{parsed.database}"'))
            return not exists
    finally:
        admin.dispose()


def upgrade(service: str, db: Database) -> None:
    ensure_database(db.url)
    command.upgrade(alembic_config(service, db), "head")


def script_heads(service: str) -> set[str]:
    """The revisions ``service``'s code expects its database at (its migrations' heads)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(SERVICES_DIR / service / "migrations"))
    return set(ScriptDirectory.from_config(cfg).get_heads())


def current_heads(db: Database) -> set[str]:
    """The revisions the database is at (empty when it was never migrated)."""
    with db.engine.connect() as conn:
        return set(MigrationContext.configure(conn).get_current_heads())


def run_env(metadata: MetaData) -> None:
    """The body of every service's ``env.py``: migrate online, in one transaction."""
    db: Database = context.config.attributes["database"]
    with db.engine.connect() as conn:
        context.configure(
            connection=conn,
            target_metadata=metadata,
            render_as_batch=db.is_sqlite,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        conn.commit()


def create_outbox_unsent_index() -> None:
    """In a service's migration: the partial index :func:`shared.db.messaging_tables`
    declares on the outbox's unsent rows (the relay's poll reads them alone)."""
    unsent = text("sent_at IS NULL")
    op.create_index(
        "ix_outbox_unsent",
        "outbox",
        ["attempts", "position"],
        postgresql_where=unsent,
        sqlite_where=unsent,
    )
