"""Decree 56 workflow: leading and residence communes, case categories, Form 01 details, emergency measures,
separations (Form 07), tasks per plan cycle, closure kind, the commune of each history row

Revision ID: 7c3e1a9b5d20
Revises: d5e96eedf5e1
Create Date: 2026-11-28 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '7c3e1a9b5d20'
down_revision: str | None = 'd5e96eedf5e1'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Every case recorded before categories existed was an abuse report: the constant default backfills them
    # without a table rewrite. The residence stays unknown (NULL) for old rows.
    op.add_column('case_record', sa.Column('residence_commune_code', sa.String(length=5), nullable=True))
    op.add_column('case_record', sa.Column('category', sa.String(length=30), server_default='abused',
                                           nullable=False))
    op.add_column('case_record', sa.Column('channel', sa.String(length=30), nullable=True))
    op.add_column('case_record', sa.Column('risk_forms', postgresql.ARRAY(sa.String(length=30)),
                                           server_default='{}', nullable=False))
    op.add_column('case_record', sa.Column('special_groups', postgresql.ARRAY(sa.String(length=2)),
                                           server_default='{}', nullable=False))
    op.add_column('case_record', sa.Column('intake_details', postgresql.JSONB(astext_type=sa.Text()),
                                           nullable=True))
    op.add_column('case_record', sa.Column('emergency_measure_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('case_record', sa.Column('emergency_measure_agency', sa.String(length=30), nullable=True))
    op.add_column('case_record', sa.Column('child_views_taken', sa.Boolean(), nullable=True))
    op.add_column('case_record', sa.Column('parent_views', sa.String(length=30), nullable=True))
    op.add_column('case_record', sa.Column('plan_approved_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('case_record', sa.Column('closure_kind', sa.String(length=10), nullable=True))
    op.alter_column('case_record', 'environment', existing_type=sa.String(length=30), nullable=True)
    # What old rows already say: the first approval of a plan, and how a closed case ended.
    op.execute("UPDATE case_record c SET plan_approved_at = p.first FROM (SELECT case_id, min(decided_at) AS first "
               "FROM case_plan WHERE status IN ('approved', 'superseded') AND decided_at IS NOT NULL "
               "GROUP BY case_id) p WHERE p.case_id = c.id")
    op.execute("UPDATE case_record SET closure_kind = CASE WHEN closure_reason = 'safe_and_stable' THEN 'review' "
               "ELSE 'early' END WHERE state = 'closed'")

    op.add_column('case_history', sa.Column('commune_code', sa.String(length=5), nullable=True))
    op.create_index('ix_case_history_commune', 'case_history', ['commune_code', 'case_id'], unique=False)

    op.add_column('case_task', sa.Column('cycle', sa.Integer(), nullable=True))
    op.add_column('case_task', sa.Column('start_date', sa.Date(), nullable=True))
    op.add_column('case_task', sa.Column('provider', sa.String(length=200), nullable=True))
    op.add_column('case_task', sa.Column('budget_vnd', sa.BigInteger(), nullable=True))
    op.add_column('case_task', sa.Column('status_reason', sa.Text(), nullable=True))
    op.execute("UPDATE case_task t SET cycle = p.cycle FROM case_plan p WHERE p.id = t.plan_id")

    op.create_table(
        'case_separation',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('case_id', sa.UUID(), nullable=False),
        sa.Column('decided_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('decided_by', sa.String(length=100), nullable=False),
        sa.Column('decision_number', sa.String(length=200), nullable=False),
        sa.Column('ground', sa.String(length=40), nullable=False),
        sa.Column('duration_days', sa.Integer(), nullable=False),
        sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('extended_days', sa.Integer(), nullable=False),
        sa.Column('authority_name', sa.String(length=200), nullable=True),
        sa.Column('authority_document', sa.String(length=200), nullable=True),
        sa.Column('place', sa.String(length=200), nullable=False),
        sa.Column('alternative_carer', sa.String(length=200), nullable=False),
        sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('end_kind', sa.String(length=30), nullable=True),
        sa.ForeignKeyConstraint(['case_id'], ['case_record.id'], name=op.f('fk_case_separation_case_id_case_record')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_case_separation')),
    )
    op.create_index(op.f('ix_case_separation_case_id'), 'case_separation', ['case_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_case_separation_case_id'), table_name='case_separation')
    op.drop_table('case_separation')
    for column in ('status_reason', 'budget_vnd', 'provider', 'start_date', 'cycle'):
        op.drop_column('case_task', column)
    op.drop_index('ix_case_history_commune', table_name='case_history')
    op.drop_column('case_history', 'commune_code')
    op.execute("UPDATE case_record SET environment = 'other' WHERE environment IS NULL")
    op.alter_column('case_record', 'environment', existing_type=sa.String(length=30), nullable=False)
    for column in ('closure_kind', 'plan_approved_at', 'parent_views', 'child_views_taken',
                   'emergency_measure_agency', 'emergency_measure_at', 'intake_details', 'special_groups',
                   'risk_forms', 'channel', 'category', 'residence_commune_code'):
        op.drop_column('case_record', column)
