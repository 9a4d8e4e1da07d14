"""a member's residence district on her contact: the deployment serving it alone
welcomes and reminds her

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
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('residence_district', sa.String(length=6), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_column('residence_district')
