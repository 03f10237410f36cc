"""consents and disclosures; the intake's child id is a hint; the alleged perpetrator among the guardians; the
intake's Idempotency-Key digest; open tasks by assignee

Revision ID: 7c3e1a9d2b40
Revises: 7c1d0a2b9e3f
Create Date: 2026-11-28 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '7c3e1a9d2b40'
down_revision: str | None = '7c1d0a2b9e3f'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('case_record', sa.Column('idempotency_digest', sqlmodel.sql.sqltypes.AutoString(length=64),
                                           nullable=True))
    op.add_column('case_record', sa.Column('child_id_hint', sa.Uuid(), nullable=True))
    op.add_column('case_record', sa.Column('perpetrator_guardian_id', sa.Uuid(), nullable=True))
    op.add_column('case_record', sa.Column('perpetrator_guardian_relationship',
                                           sqlmodel.sql.sqltypes.AutoString(length=30), nullable=True))
    # A child id that came with the intake, never confirmed by the commune's link-child, becomes a hint: it must
    # not keep opening the child's registry record (trust finding 1).
    op.execute("""
        UPDATE case_record SET child_id_hint = child_id, child_id = NULL
        WHERE child_id IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM case_history h WHERE h.case_id = case_record.id AND h.action = 'link_child')
    """)
    op.create_index('ix_case_task_assignee_open', 'case_task', ['assignee_id'], unique=False,
                    postgresql_where=sa.text("status IN ('open', 'in_progress') AND assignee_id IS NOT NULL"))
    op.create_table(
        'case_consent',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('case_id', postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column('given_by', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column('giver_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column('guardian_id', sa.Uuid(), nullable=True),
        sa.Column('child_age_years', sa.Integer(), nullable=True),
        sa.Column('purpose', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column('scope', sa.Text(), nullable=False),
        sa.Column('recipient', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column('given_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('recorded_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column('withdrawn_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('withdrawn_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column('withdrawal_note', sa.Text(), nullable=True),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['case_id'], ['case_record.id'], name=op.f('fk_case_consent_case_id_case_record')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_case_consent')),
    )
    op.create_index('ix_case_consent_case', 'case_consent', ['case_id', 'given_at'], unique=False)
    op.create_table(
        'case_disclosure',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('case_id', postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column('recipient', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column('purpose', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column('information', sa.Text(), nullable=False),
        sa.Column('basis', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column('consent_ids', postgresql.ARRAY(postgresql.UUID(as_uuid=True)), nullable=False),
        sa.Column('legal_reference', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
        sa.Column('disclosed_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('disclosed_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column('agency', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
        sa.ForeignKeyConstraint(['case_id'], ['case_record.id'],
                                name=op.f('fk_case_disclosure_case_id_case_record')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_case_disclosure')),
    )
    op.create_index('ix_case_disclosure_case', 'case_disclosure', ['case_id', 'disclosed_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_case_disclosure_case', table_name='case_disclosure')
    op.drop_table('case_disclosure')
    op.drop_index('ix_case_consent_case', table_name='case_consent')
    op.drop_table('case_consent')
    op.drop_index('ix_case_task_assignee_open', table_name='case_task',
                  postgresql_where=sa.text("status IN ('open', 'in_progress') AND assignee_id IS NOT NULL"))
    op.execute("UPDATE case_record SET child_id = child_id_hint WHERE child_id IS NULL AND child_id_hint IS NOT NULL")
    op.drop_column('case_record', 'perpetrator_guardian_relationship')
    op.drop_column('case_record', 'perpetrator_guardian_id')
    op.drop_column('case_record', 'child_id_hint')
    op.drop_column('case_record', 'idempotency_digest')
