"""a person can remove a finished job's file and results

- `jobs.purged_by`: who removed the job's input and results from its page or the API (NULL when the retention
  purge removed them); `purged_at` says when, as before.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("purged_by", sa.String(length=254), nullable=True))


def downgrade() -> None:
    op.drop_column("jobs", "purged_by")
