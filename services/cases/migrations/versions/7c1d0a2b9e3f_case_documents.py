"""case documents: the register of the Decree 56 papers, their numbering series and their renditions

Revision ID: 7c1d0a2b9e3f
Revises: 7c3e1a9b5d20
Create Date: 2026-11-28 07:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '7c1d0a2b9e3f'
down_revision: str | None = '7c3e1a9b5d20'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('document_sequence',
    sa.Column('issuer', sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('series', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('last_number', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('issuer', 'year', 'series', name=op.f('pk_document_sequence'))
    )
    op.create_table('case_document',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('case_id', sa.UUID(), nullable=False),
    sa.Column('paper', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('step_version', sa.Integer(), nullable=False),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
    sa.Column('issuer', sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
    sa.Column('issuer_agency', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
    sa.Column('issuer_commune_code', sqlmodel.sql.sqltypes.AutoString(length=5), nullable=True),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('series', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('reference', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('issued_on', sa.Date(), nullable=False),
    sa.Column('signer_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('registered_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['case_record.id'], name=op.f('fk_case_document_case_id_case_record')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_case_document')),
    sa.UniqueConstraint('case_id', 'paper', 'step_version', name='uq_case_document_step'),
    sa.UniqueConstraint('issuer', 'year', 'series', 'number', name='uq_case_document_number')
    )
    op.create_index(op.f('ix_case_document_case_id'), 'case_document', ['case_id'], unique=False)
    op.create_table('case_document_version',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('document_id', sa.UUID(), nullable=False),
    sa.Column('audience', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
    sa.Column('case_version', sa.Integer(), nullable=False),
    sa.Column('pdf', sa.LargeBinary(), nullable=False),
    sa.Column('pdf_sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('docx', sa.LargeBinary(), nullable=False),
    sa.Column('docx_sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['document_id'], ['case_document.id'],
                            name=op.f('fk_case_document_version_document_id_case_document')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_case_document_version')),
    sa.UniqueConstraint('document_id', 'audience', 'case_version', name='uq_case_document_version')
    )
    # A kept rendition is what was sent or archived: its bytes and digests never change.
    op.execute("""
        CREATE FUNCTION case_document_version_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'a kept rendition of a paper cannot be changed' USING ERRCODE = 'restrict_violation';
        END $$
    """)
    op.execute("""
        CREATE TRIGGER case_document_version_immutable BEFORE UPDATE ON case_document_version
            FOR EACH ROW EXECUTE FUNCTION case_document_version_immutable()
    """)


def downgrade() -> None:
    op.drop_table('case_document_version')
    op.execute("DROP FUNCTION case_document_version_immutable()")
    op.drop_index(op.f('ix_case_document_case_id'), table_name='case_document')
    op.drop_table('case_document')
    op.drop_table('document_sequence')
