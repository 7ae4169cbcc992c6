"""deleted_idempotency_keys: a deleted job's key is not reused; jobs.artifacts_expired_at: retention

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'deleted_idempotency_keys',
        sa.Column('owner', sa.String(length=128), nullable=False),
        sa.Column('idempotency_key', sa.String(length=255), nullable=False),
        sa.Column('job_id', sa.Uuid(), nullable=False),
        sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('owner', 'idempotency_key'),
    )
    op.add_column('jobs', sa.Column('artifacts_expired_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column('jobs', 'artifacts_expired_at')
    op.drop_table('deleted_idempotency_keys')
