"""the outbox's unsent rows indexed: the relay's poll reads them alone, however many
rows were sent before

Revision ID: 0003
Revises: 0002

"""
from typing import Sequence, Union

from alembic import op

from shared.migrations import create_outbox_unsent_index


# revision identifiers, used by Alembic.
revision: str = '0003'
down_revision: Union[str, Sequence[str], None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    create_outbox_unsent_index()


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index('ix_outbox_unsent', table_name='outbox')
