"""sync_change: the log of the offline sync feed of children, written by a trigger on child

Revision ID: 9e4b2d7a1c3f
Revises: 7c3e91a4d2b5
Create Date: 2026-11-28 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '9e4b2d7a1c3f'
down_revision: str | None = '7c3e91a4d2b5'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("""CREATE TABLE sync_change (
        seq bigint GENERATED ALWAYS AS IDENTITY,
        xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
        record_id uuid NOT NULL,
        province_code varchar(2) NOT NULL,
        commune_code varchar(5) NOT NULL,
        reason varchar(20),
        at timestamp with time zone NOT NULL DEFAULT now(),
        CONSTRAINT pk_sync_change PRIMARY KEY (seq))""")
    op.create_index('ix_sync_change_order', 'sync_change', ['xid', 'seq'])
    op.create_index('ix_sync_change_province', 'sync_change', ['province_code', 'xid', 'seq'])
    op.create_index('ix_sync_change_commune', 'sync_change', ['commune_code', 'xid', 'seq'])
    op.create_index('ix_sync_change_record', 'sync_change', ['record_id'])
    # A child logs its commune after the change, and before it when the child moved: that row becomes the
    # tombstone on the old commune's phones (services/common/sync.py). A merge changes the retired record.
    op.execute("""CREATE FUNCTION sync_child_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO sync_change (record_id, province_code, commune_code)
  VALUES (NEW.id, NEW.province_code, NEW.commune_code);
  IF TG_OP = 'UPDATE' AND (OLD.province_code, OLD.commune_code)
                          IS DISTINCT FROM (NEW.province_code, NEW.commune_code) THEN
    INSERT INTO sync_change (record_id, province_code, commune_code)
    VALUES (OLD.id, OLD.province_code, OLD.commune_code);
  END IF;
  RETURN NULL;
END $$""")
    op.execute("CREATE TRIGGER child_sync AFTER INSERT OR UPDATE ON child "
               "FOR EACH ROW EXECUTE FUNCTION sync_child_change()")
    # Children registered before the log: one row each, so a phone's first sync finds them.
    op.execute(sa.text("INSERT INTO sync_change (record_id, province_code, commune_code) "
                       "SELECT id, province_code, commune_code FROM child WHERE merged_into_id IS NULL "
                       "ORDER BY created_at"))


def downgrade() -> None:
    op.execute("DROP TRIGGER child_sync ON child")
    op.execute("DROP FUNCTION sync_child_change()")
    op.drop_table('sync_change')
