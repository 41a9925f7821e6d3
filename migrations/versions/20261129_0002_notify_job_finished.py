"""notify listeners when a job finishes

A trigger, not application code, so every writer (any worker version, the reconciler, an operator's UPDATE)
wakes `GET /api/v1/jobs/<id>?wait=` the moment the status commits.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNEL = "cytoscore_job_finished"


def upgrade() -> None:
    op.execute(f"""
        CREATE FUNCTION cytoscore_notify_job_finished() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{CHANNEL}', NEW.id::text);
            RETURN NULL;
        END $$
    """)
    op.execute("""
        CREATE TRIGGER jobs_notify_finished
        AFTER UPDATE OF status ON jobs
        FOR EACH ROW
        WHEN (NEW.status IN ('succeeded', 'failed') AND OLD.status IS DISTINCT FROM NEW.status)
        EXECUTE FUNCTION cytoscore_notify_job_finished()
    """)


def downgrade() -> None:
    op.execute("DROP TRIGGER jobs_notify_finished ON jobs")
    op.execute("DROP FUNCTION cytoscore_notify_job_finished()")
