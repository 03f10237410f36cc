"""guardian ids, idempotent creation, one record per person, hotline match, aged-out check

Existing records migrate: every guardian gets a stable id; the given name is derived from the stored name;
records that already share a name, date of birth and commune (registered with confirm_not_duplicate) keep
coexisting, the oldest staying under the new unique index.

Revision ID: 7c3e91a4d2b5
Revises: bd92fec8736d
Create Date: 2026-12-01 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '7c3e91a4d2b5'
down_revision: str | None = 'bd92fec8736d'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('child', sa.Column('given_name_search', sa.String(length=200, collation='C'), nullable=True))
    op.execute("UPDATE child SET given_name_search = regexp_replace(name_search, '^.* ', '')")
    op.alter_column('child', 'given_name_search', nullable=False)
    op.add_column('child', sa.Column('confirmed_distinct', sa.Boolean(), nullable=False,
                                     server_default=sa.false()))
    op.alter_column('child', 'confirmed_distinct', server_default=None)
    op.execute("""
        UPDATE child SET guardians = (
            SELECT jsonb_agg(CASE WHEN g ? 'id' THEN g ELSE g || jsonb_build_object('id', gen_random_uuid()::text) END
                             ORDER BY position)
            FROM jsonb_array_elements(child.guardians) WITH ORDINALITY AS list(g, position))
        WHERE jsonb_array_length(guardians) > 0
    """)
    op.execute("""
        UPDATE child SET confirmed_distinct = true
        WHERE merged_into_id IS NULL AND EXISTS (
            SELECT 1 FROM child earlier
            WHERE earlier.merged_into_id IS NULL AND earlier.commune_code = child.commune_code
              AND earlier.name_search = child.name_search AND earlier.date_of_birth = child.date_of_birth
              AND (earlier.created_at, earlier.id) < (child.created_at, child.id))
    """)
    op.create_index('ix_child_same_person', 'child', ['commune_code', 'name_search', 'date_of_birth'], unique=True,
                    postgresql_where=sa.text('merged_into_id IS NULL AND NOT confirmed_distinct'))
    op.create_index('ix_child_match_commune', 'child', ['commune_code', 'given_name_search', 'date_of_birth'],
                    unique=False, postgresql_where=sa.text('merged_into_id IS NULL'))
    op.create_index('ix_child_match_province', 'child', ['province_code', 'given_name_search', 'date_of_birth'],
                    unique=False, postgresql_where=sa.text('merged_into_id IS NULL'))
    op.create_index('ix_child_aging', 'child', ['date_of_birth'], unique=False,
                    postgresql_where=sa.text("merged_into_id IS NULL AND status = 'active'"))
    op.create_table('creation_request',
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('idempotency_key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('request_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('child_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['child_id'], ['child.id'], name=op.f('fk_creation_request_child_id_child'),
                            deferrable=True, initially='DEFERRED'),
    sa.PrimaryKeyConstraint('created_by', 'idempotency_key', name=op.f('pk_creation_request'))
    )
    op.create_table('match_quota',
    sa.Column('subject_id', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('window_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('subject_id', 'window_start', name=op.f('pk_match_quota'))
    )


def downgrade() -> None:
    op.drop_table('match_quota')
    op.drop_table('creation_request')
    op.drop_index('ix_child_aging', table_name='child', postgresql_where=sa.text("merged_into_id IS NULL AND status = 'active'"))
    op.drop_index('ix_child_match_province', table_name='child', postgresql_where=sa.text('merged_into_id IS NULL'))
    op.drop_index('ix_child_match_commune', table_name='child', postgresql_where=sa.text('merged_into_id IS NULL'))
    op.drop_index('ix_child_same_person', table_name='child',
                  postgresql_where=sa.text('merged_into_id IS NULL AND NOT confirmed_distinct'))
    op.drop_column('child', 'confirmed_distinct')
    op.drop_column('child', 'given_name_search')
