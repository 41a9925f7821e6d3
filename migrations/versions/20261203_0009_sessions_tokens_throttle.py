"""server-side sessions, named tokens that expire, one-time passwords, the sign-in throttle, audit targets

- `user_sessions`: one row per signed-in browser; the cookie carries a secret whose sha256 is stored. Every request
  finds its row, so ending it ends the session wherever the cookie was copied. It replaces `users.session_version`.
- `users.must_change_password` (a one-time password must be changed before anything else) and `last_login_at`.
- `api_tokens.label` becomes `name`, required: tokens without one are named "token <id>". `expires_at`, required:
  tokens made before this revision expire a year after the upgrade.
- `login_throttle`: failed sign-ins per email, from any address, for the back-off.
- `audit_log.target`: the account an action was about; `actor` and `target` are indexed for the audit page's filter.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "user_sessions",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=255), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_by", sa.String(length=32), nullable=True),
        sa.CheckConstraint("(ended_at IS NULL) = (ended_by IS NULL)", name=op.f("ck_user_sessions_ended_with_reason")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_sessions_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_sessions")),
        sa.UniqueConstraint("secret_sha256", name=op.f("uq_user_sessions_secret_sha256")),
    )
    op.create_index(op.f("ix_user_sessions_user_id"), "user_sessions", ["user_id"], unique=False)
    op.create_table(
        "login_throttle",
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("blocked_until", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("failures >= 1", name=op.f("ck_login_throttle_failures")),
        sa.PrimaryKeyConstraint("email", name=op.f("pk_login_throttle")),
    )

    op.add_column("users", sa.Column("must_change_password", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.alter_column("users", "must_change_password", server_default=None)
    op.add_column("users", sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True))
    op.drop_column("users", "session_version")

    op.alter_column("api_tokens", "label", new_column_name="name")
    op.execute("UPDATE api_tokens SET name = 'token ' || id WHERE name IS NULL")
    op.alter_column("api_tokens", "name", nullable=False)
    op.add_column("api_tokens", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE api_tokens SET expires_at = greatest(now(), created_at) + interval '365 days'")
    op.alter_column("api_tokens", "expires_at", nullable=False)
    op.create_check_constraint(op.f("ck_api_tokens_expires_after_created"), "api_tokens", "expires_at > created_at")

    op.add_column("audit_log", sa.Column("target", sa.String(length=254), nullable=True))
    op.create_index(op.f("ix_audit_log_target"), "audit_log", ["target"], unique=False)
    op.create_index(op.f("ix_audit_log_actor"), "audit_log", ["actor"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_audit_log_actor"), table_name="audit_log")
    op.drop_index(op.f("ix_audit_log_target"), table_name="audit_log")
    op.drop_column("audit_log", "target")

    op.drop_constraint(op.f("ck_api_tokens_expires_after_created"), "api_tokens", type_="check")
    op.drop_column("api_tokens", "expires_at")
    op.alter_column("api_tokens", "name", new_column_name="label", nullable=True)

    # Every session ends with the downgrade: the old code reads its cookie as "user id:session version".
    op.add_column("users", sa.Column("session_version", sa.Integer(), nullable=False, server_default="0"))
    op.alter_column("users", "session_version", server_default=None)
    op.drop_column("users", "last_login_at")
    op.drop_column("users", "must_change_password")

    op.drop_table("login_throttle")
    op.drop_index(op.f("ix_user_sessions_user_id"), table_name="user_sessions")
    op.drop_table("user_sessions")
