"""sync_change: the log of the offline sync feed, written by triggers on cases, tasks and notes

Revision ID: 6a1f3c2e9b7d
Revises: 7c3e1a9d2b40
Create Date: 2026-11-28 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '6a1f3c2e9b7d'
down_revision: str | None = '7c3e1a9d2b40'
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
    # A case logs its commune after the change, and before it when a transfer moved it: that row becomes the
    # tombstone on the old commune's phones (services/common/sync.py).
    op.execute("""CREATE FUNCTION sync_case_change() RETURNS trigger LANGUAGE plpgsql AS $$
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
    op.execute("CREATE TRIGGER case_record_sync AFTER INSERT OR UPDATE ON case_record "
               "FOR EACH ROW EXECUTE FUNCTION sync_case_change()")
    # A task or a note is part of its case on the phone: its change is a change of the case, at the case's place.
    op.execute("""CREATE FUNCTION sync_case_part_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO sync_change (record_id, province_code, commune_code)
  SELECT c.id, c.province_code, c.commune_code FROM case_record c WHERE c.id = NEW.case_id;
  RETURN NULL;
END $$""")
    for table in ("case_task", "case_note"):
        op.execute(f"CREATE TRIGGER {table}_sync AFTER INSERT OR UPDATE ON {table} "
                   "FOR EACH ROW EXECUTE FUNCTION sync_case_part_change()")
    # Cases recorded before the log: one row each, so a phone's first sync finds them.
    op.execute(sa.text("INSERT INTO sync_change (record_id, province_code, commune_code) "
                       "SELECT id, province_code, commune_code FROM case_record ORDER BY received_at"))


def downgrade() -> None:
    for table in ("case_note", "case_task", "case_record"):
        op.execute(f"DROP TRIGGER {table}_sync ON {table}")
    op.execute("DROP FUNCTION sync_case_part_change()")
    op.execute("DROP FUNCTION sync_case_change()")
    op.drop_table('sync_change')
