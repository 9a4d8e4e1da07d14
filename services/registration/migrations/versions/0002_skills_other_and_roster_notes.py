"""members' own words for skills (skills_other) and roster notes

Revision ID: 0002
Revises: 0001

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0002'
down_revision: Union[str, Sequence[str], None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('skills_other', sa.JSON(), server_default=sa.text("'[]'"), nullable=False)
        )

    with op.batch_alter_table('rosters', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('noted', sa.Integer(), server_default=sa.text('0'), nullable=False)
        )

    op.create_table('roster_notes',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('roster_id', sa.Uuid(), nullable=False),
    sa.Column('row', sa.Integer(), nullable=False),
    sa.Column('field', sa.String(length=60), nullable=False),
    sa.Column('message', sa.String(length=500), nullable=False),
    sa.ForeignKeyConstraint(['roster_id'], ['rosters.id'], name=op.f('fk_roster_notes_roster_id_rosters')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_roster_notes'))
    )
    with op.batch_alter_table('roster_notes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_roster_notes_roster_id'), ['roster_id'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('roster_notes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_roster_notes_roster_id'))

    op.drop_table('roster_notes')
    with op.batch_alter_table('rosters', schema=None) as batch_op:
        batch_op.drop_column('noted')

    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_column('skills_other')
