"""Alembic environment of the reporting service."""

from services.reporting.models import Base
from shared.migrations import run_env

run_env(Base.metadata)
