"""a job can be cancelled while it waits or runs

- `jobs.status` may be `cancelled`: someone stopped the job before it finished; `jobs.cancelled_by` names them and
  `finished_at` says when. Its stored input stays, so it can be scored again; its results are never served.
- The finishing NOTIFY fires for it too, so a `?wait=` returns at once (webhooks already fire for any finish).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = "'queued', 'running', 'succeeded', 'failed', 'needs_review'"


def _notify_when(statuses: str) -> None:
    op.execute("DROP TRIGGER jobs_notify_finished ON jobs")
    op.execute(f"""
        CREATE TRIGGER jobs_notify_finished
        AFTER UPDATE OF status ON jobs
        FOR EACH ROW
        WHEN (NEW.status IN ({statuses}) AND OLD.status IS DISTINCT FROM NEW.status)
        EXECUTE FUNCTION cytoscore_notify_job_finished()
    """)


def upgrade() -> None:
    op.drop_constraint(op.f("ck_jobs_status"), "jobs", type_="check")
    op.create_check_constraint(op.f("ck_jobs_status"), "jobs", f"status IN ({STATUSES}, 'cancelled')")
    op.add_column("jobs", sa.Column("cancelled_by", sa.String(length=254), nullable=True))
    _notify_when("'succeeded', 'failed', 'needs_review', 'cancelled'")


def downgrade() -> None:
    _notify_when("'succeeded', 'failed', 'needs_review'")
    # A cancelled job stays finished and unserved: it fails, saying who cancelled it.
    op.execute(
        "UPDATE jobs SET status = 'failed', error = 'cancelled by ' || coalesce(cancelled_by, 'someone') "
        "WHERE status = 'cancelled'"
    )
    op.drop_column("jobs", "cancelled_by")
    op.drop_constraint(op.f("ck_jobs_status"), "jobs", type_="check")
    op.create_check_constraint(op.f("ck_jobs_status"), "jobs", f"status IN ({STATUSES})")
