"""webhooks: an owner's URLs told when their jobs finish, and the log of each delivery

- `webhooks`: an owner's URL and the secret its deliveries are signed with (kept, not hashed: each delivery is
  signed with it).
- `webhook_deliveries`: one per finished job and hook; `pending` until delivered or out of attempts (`failed`).
- A trigger, not application code, makes the deliveries when a job leaves `queued`/`running`, as migration 0002's
  NOTIFY does: every writer that finishes a job (a worker, the reconciler giving up, an operator's UPDATE) tells
  the hooks, in the same transaction as the status.

Revision ID: 0016
Revises: 0014
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhooks",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("owner_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("secret", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.true(), nullable=False),
    )
    op.create_index(op.f("ix_webhooks_owner_id"), "webhooks", ["owner_id"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("webhook_id", sa.Integer(), sa.ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
        sa.Column("job_id", sa.Uuid(), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("status", sa.String(16), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('pending', 'delivered', 'failed')", name=op.f("ck_webhook_deliveries_status")),
        sa.CheckConstraint(
            "(status = 'pending') = (next_attempt_at IS NOT NULL)", name=op.f("ck_webhook_deliveries_due_if_pending")
        ),
    )
    op.create_index(op.f("ix_webhook_deliveries_webhook_id"), "webhook_deliveries", ["webhook_id"])
    op.create_index(op.f("ix_webhook_deliveries_job_id"), "webhook_deliveries", ["job_id"])
    # The sender's one question: which pending deliveries are due.
    op.create_index(
        "ix_webhook_deliveries_due",
        "webhook_deliveries",
        ["next_attempt_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.execute("""
        CREATE FUNCTION cytoscore_webhook_deliveries() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO webhook_deliveries (webhook_id, job_id, status, attempts, next_attempt_at, created_at)
            SELECT w.id, NEW.id, 'pending', 0, now(), now()
            FROM webhooks w WHERE w.owner_id = NEW.owner_id AND w.active;
            RETURN NULL;
        END $$
    """)
    op.execute("""
        CREATE TRIGGER jobs_webhook_deliveries
        AFTER UPDATE OF status ON jobs
        FOR EACH ROW
        WHEN (OLD.status IN ('queued', 'running') AND NEW.status NOT IN ('queued', 'running'))
        EXECUTE FUNCTION cytoscore_webhook_deliveries()
    """)


def downgrade() -> None:
    op.execute("DROP TRIGGER jobs_webhook_deliveries ON jobs")
    op.execute("DROP FUNCTION cytoscore_webhook_deliveries()")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhooks")
