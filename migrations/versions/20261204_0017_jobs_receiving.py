"""a job can be scored while the web still stores its input

- `jobs.receiving_at`: set while the web stores a large upload part by part (each part committed as it is stored,
  so the workers score the first parts while the web checks the rest), and bumped with each part; NULL once the
  input is whole (always, for every other job). A job stays unfinished while it is set, and one whose web process
  stopped storing it (set and older than the heartbeat staleness) is deleted by the reconciler.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("receiving_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.execute("DELETE FROM jobs WHERE receiving_at IS NOT NULL")  # inputs never made whole: nothing to keep
    op.drop_column("jobs", "receiving_at")
