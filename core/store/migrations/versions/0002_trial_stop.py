"""A training job's trial records why it stopped early and after how many folds.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobtrial') as batch_op:
        batch_op.add_column(sa.Column('stop', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('folds', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('jobtrial') as batch_op:
        batch_op.drop_column('folds')
        batch_op.drop_column('stop')
