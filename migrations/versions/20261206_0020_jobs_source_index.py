"""the cases opened from a job's rows are found by their source

- `ix_jobs_source_job_id_source_row`: opening a row again finds the case already opened from it, and deleting a
  job clears its cases' links, without reading every job. Partial: only such cases have a source.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_jobs_source_job_id_source_row",
        "jobs",
        ["source_job_id", "source_row"],
        postgresql_where=sa.text("source_job_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_source_job_id_source_row", table_name="jobs")
