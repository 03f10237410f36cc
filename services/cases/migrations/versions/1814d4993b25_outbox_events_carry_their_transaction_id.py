"""outbox events carry their transaction id (lock-free feed ordered by xid, seq)

Revision ID: 1814d4993b25
Revises: 4b0bf7189831
Create Date: 2026-12-01 09:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = '1814d4993b25'
down_revision: str | None = '4b0bf7189831'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Events already written get xid 0: they come first, in their old order, and a consumer's stored seq cursor
    # (read as position (0, seq)) keeps its meaning. A constant default adds the column without a table rewrite.
    op.execute("ALTER TABLE outbox_event ADD COLUMN xid xid8 NOT NULL DEFAULT '0'")
    op.execute("ALTER TABLE outbox_event ALTER COLUMN xid SET DEFAULT pg_current_xact_id()")
    op.create_index('ix_outbox_event_feed_order', 'outbox_event', ['xid', 'seq'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_outbox_event_feed_order', table_name='outbox_event')
    op.drop_column('outbox_event', 'xid')
