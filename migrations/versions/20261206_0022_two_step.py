"""two-step sign-in: an authenticator app's code after the password, and recovery codes

- `users.totp_secret`, `totp_since`, `totp_last_step`: the RFC 6238 secret (base32), when it was turned on, and the
  last time step whose code signed in, so that a code is good once.
- `recovery_codes`: ten one-use codes per person who turned it on, stored as sha256.
- `user_sessions.totp_pending`: a secret shown on a browser's set-up page, until a code from the app confirms it.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("users", sa.Column("totp_secret", sa.String(length=32), nullable=True))
    op.add_column("users", sa.Column("totp_since", sa.DateTime(timezone=True), nullable=True))
    op.add_column("users", sa.Column("totp_last_step", sa.BigInteger(), nullable=True))
    op.add_column("user_sessions", sa.Column("totp_pending", sa.String(length=32), nullable=True))
    op.create_table(
        "recovery_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("code_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_recovery_codes_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recovery_codes")),
        sa.UniqueConstraint("code_sha256", name=op.f("uq_recovery_codes_code_sha256")),
    )
    op.create_index(op.f("ix_recovery_codes_user_id"), "recovery_codes", ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_recovery_codes_user_id"), table_name="recovery_codes")
    op.drop_table("recovery_codes")
    op.drop_column("user_sessions", "totp_pending")
    op.drop_column("users", "totp_last_step")
    op.drop_column("users", "totp_since")
    op.drop_column("users", "totp_secret")
