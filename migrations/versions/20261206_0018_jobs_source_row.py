"""a single case can be opened from one row of another job

- `jobs.source_job_id`, `jobs.source_row`: the job and row a single case was opened from (its values read from that
  job's stored input); NULL for every other job. Deleting the source job keeps the case and clears the link.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("source_job_id", sa.Uuid(), nullable=True))
    op.add_column("jobs", sa.Column("source_row", sa.Integer(), nullable=True))
    op.create_foreign_key(
        op.f("fk_jobs_source_job_id_jobs"), "jobs", "jobs", ["source_job_id"], ["id"], ondelete="SET NULL"
    )


def downgrade() -> None:
    op.drop_constraint(op.f("fk_jobs_source_job_id_jobs"), "jobs", type_="foreignkey")
    op.drop_column("jobs", "source_row")
    op.drop_column("jobs", "source_job_id")
