"""pairing runs as jobs: queued by the API, done by the worker, with their progress

Revision ID: 0002
Revises: 0001

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

import shared.db


# revision identifiers, used by Alembic.
revision: str = '0002'
down_revision: Union[str, Sequence[str], None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('pairing_runs',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('scope', sa.String(length=40), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('phase', sa.String(length=20), nullable=False),
    sa.Column('progress', sa.JSON(), nullable=False),
    sa.Column('summary', sa.JSON(), nullable=True),
    sa.Column('error', sa.String(length=500), nullable=True),
    sa.Column('requested_by', sa.String(length=80), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', shared.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', shared.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', shared.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pairing_runs'))
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('pairing_runs')
