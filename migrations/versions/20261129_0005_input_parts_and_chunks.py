"""store inputs in parts, and a ledger of the parts workers have claimed and finished

A large CSV is stored as parts cut at record boundaries (each with its first row number), so several workers can
score one job at once, each reading only its own part. `job_chunks` records which worker holds a part and which
parts are done; PostgreSQL stays the one place that knows.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _lz4_available() -> bool:
    bind = op.get_bind()
    if bind.dialect.server_version_info < (14,):
        return False
    return bool(bind.execute(sa.text("SELECT 'lz4' = ANY (enumvals) FROM pg_settings "
                                     "WHERE name = 'default_toast_compression'")).scalar())  # fmt: skip


def upgrade() -> None:
    op.create_table(
        "job_input_parts",
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("first_row", sa.Integer(), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["job_inputs.job_id"], name=op.f("fk_job_input_parts_job_id_job_inputs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", "part", name=op.f("pk_job_input_parts")),
    )
    op.create_table(
        "job_chunks",
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("token", sa.Uuid(), nullable=False),
        sa.Column("worker", sa.String(length=255), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rows_scored", sa.Integer(), nullable=False),
        sa.Column("rows_rejected", sa.Integer(), nullable=False),
        sa.Column("id_hashes", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_job_chunks_job_id_jobs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id", "part", name=op.f("pk_job_chunks")),
    )
    if _lz4_available():
        op.execute("ALTER TABLE job_input_parts ALTER COLUMN content SET COMPRESSION lz4")
    op.execute(
        "INSERT INTO job_input_parts (job_id, part, first_row, row_count, content) "
        "SELECT i.job_id, 0, 1, j.rows_total, i.content FROM job_inputs i JOIN jobs j ON j.id = i.job_id"
    )
    with op.batch_alter_table("job_inputs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("header", sa.LargeBinary(), nullable=True))
        batch_op.drop_column("content")


def downgrade() -> None:
    with op.batch_alter_table("job_inputs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("content", sa.LargeBinary(), nullable=False, server_default=b""))
    op.execute(
        "UPDATE job_inputs SET content = (SELECT string_agg(p.content, ''::bytea ORDER BY p.part) "
        "FROM job_input_parts p WHERE p.job_id = job_inputs.job_id)"
    )
    with op.batch_alter_table("job_inputs", schema=None) as batch_op:
        batch_op.drop_column("header")
        batch_op.alter_column("content", server_default=None)
    op.drop_table("job_chunks")
    op.drop_table("job_input_parts")
