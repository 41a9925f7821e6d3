"""a job that looks misread is held for review

- `jobs.status` may be `needs_review`: every row was read, but the input looks misread (docs/plausibility.md); its
  results are held back until a lab user confirms them. The finishing NOTIFY fires for it too.
- `jobs.rows_out_of_range`: scored rows with a value beyond the training range; `jobs.review`: why the job was held;
  `jobs.reviewed_at`, `jobs.reviewed_by`: who confirmed it, and when.
- `part_claims`: each part's counts behind the verdict, added up when the job's last part is written.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = "'queued', 'running', 'succeeded', 'failed'"
PART_COUNTS = ("rows_out_of_range", "rows_implausible", "rows_geometry", "rows_far")


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
    op.create_check_constraint(op.f("ck_jobs_status"), "jobs", f"status IN ({STATUSES}, 'needs_review')")
    op.add_column("jobs", sa.Column("rows_out_of_range", sa.Integer(), server_default="0", nullable=False))
    op.add_column("jobs", sa.Column("review", sa.Text(), nullable=True))
    op.add_column("jobs", sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("jobs", sa.Column("reviewed_by", sa.String(length=254), nullable=True))
    for name in PART_COUNTS:
        op.add_column("part_claims", sa.Column(name, sa.Integer(), server_default="0", nullable=False))
    _notify_when("'succeeded', 'failed', 'needs_review'")


def downgrade() -> None:
    _notify_when("'succeeded', 'failed'")
    # Never release held results by a downgrade: a held job fails, saying why it was held.
    op.execute("UPDATE jobs SET status = 'failed', error = 'held for review: ' || review WHERE status = 'needs_review'")
    for name in PART_COUNTS:
        op.drop_column("part_claims", name)
    op.drop_column("jobs", "reviewed_by")
    op.drop_column("jobs", "reviewed_at")
    op.drop_column("jobs", "review")
    op.drop_column("jobs", "rows_out_of_range")
    op.drop_constraint(op.f("ck_jobs_status"), "jobs", type_="check")
    op.create_check_constraint(op.f("ck_jobs_status"), "jobs", f"status IN ({STATUSES})")
