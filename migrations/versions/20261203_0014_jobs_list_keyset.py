"""the jobs list pages by (created_at, id), for everyone and per owner

- `ix_jobs_created_at_id` on `jobs (created_at, id)`: an admin's list, newest first, a page at a time after the
  last row seen (keyset pagination), whatever the number of jobs. It replaces `ix_jobs_created_at`.
- `ix_jobs_owner_id_created_at_id` on `jobs (owner_id, created_at, id)`: the same for one owner's jobs (everyone
  who is not an admin, and an admin's filter by owner). It replaces `ix_jobs_owner_id`.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_jobs_created_at_id", "jobs", ["created_at", "id"])
    op.create_index("ix_jobs_owner_id_created_at_id", "jobs", ["owner_id", "created_at", "id"])
    op.drop_index("ix_jobs_created_at", table_name="jobs")
    op.drop_index("ix_jobs_owner_id", table_name="jobs")


def downgrade() -> None:
    op.create_index("ix_jobs_owner_id", "jobs", ["owner_id"])
    op.create_index("ix_jobs_created_at", "jobs", ["created_at"])
    op.drop_index("ix_jobs_owner_id_created_at_id", table_name="jobs")
    op.drop_index("ix_jobs_created_at_id", table_name="jobs")
