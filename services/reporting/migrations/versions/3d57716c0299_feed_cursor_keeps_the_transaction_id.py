"""feed cursor keeps the transaction id of the last event applied

Revision ID: 3d57716c0299
Revises: f6f4585f739b
Create Date: 2026-12-01 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '3d57716c0299'
down_revision: str | None = 'f6f4585f739b'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A cursor kept from before is (0, seq): the producers gave their earlier events xid 0.
    op.add_column('feed_cursor', sa.Column('xid', sa.BigInteger(), server_default=sa.text('0'), nullable=False))


def downgrade() -> None:
    op.drop_column('feed_cursor', 'xid')
