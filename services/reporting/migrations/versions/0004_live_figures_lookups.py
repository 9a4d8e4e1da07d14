"""the live figures' join in fewer look-ups: the current-members index covers what the
figures read of a member's scope; on SQLite member_status keeps its rows in its key's
B-tree (WITHOUT ROWID)

Revision ID: 0004
Revises: 0003

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision: str = '0004'
down_revision: Union[str, Sequence[str], None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

STATUS_FLAGS = (
    'dual_registered', 'dual_paired', 'home_visit', 'community_activity', 'policy_talk',
    'wish', 'team', 'complete',
)


def _current_index(columns: list[str]) -> None:
    with op.batch_alter_table('member_scopes', schema=None) as batch_op:
        batch_op.drop_index('ix_member_scopes_current')
        batch_op.create_index('ix_member_scopes_current', columns, unique=False)


def _member_status(with_rowid: bool) -> None:
    """SQLite only: member_status recreated with or without a rowid, its rows kept."""
    if op.get_bind().dialect.name != 'sqlite':
        return
    op.create_table('member_status_new',
    sa.Column('member_id', sa.Uuid(), nullable=False),
    *[sa.Column(flag, sa.Boolean(), nullable=False) for flag in STATUS_FLAGS],
    sa.Column('verified_records', sa.Integer(), nullable=False),
    sa.Column('hours', sa.Double(), nullable=False),
    sa.PrimaryKeyConstraint('member_id', name=op.f('pk_member_status')),
    sqlite_with_rowid=with_rowid,
    )
    columns = ', '.join(('member_id', *STATUS_FLAGS, 'verified_records', 'hours'))
    op.execute(f'INSERT INTO member_status_new ({columns}) SELECT {columns} FROM member_status')
    op.drop_table('member_status')
    op.rename_table('member_status_new', 'member_status')


def upgrade() -> None:
    """Upgrade schema."""
    _current_index(['scope', 'valid_to', 'member_id', 'is_leader_cadre', 'reported_in'])
    _member_status(with_rowid=False)


def downgrade() -> None:
    """Downgrade schema."""
    _member_status(with_rowid=True)
    _current_index(['scope', 'valid_to', 'member_id'])
