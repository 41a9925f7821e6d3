"""a result says whether its row's feature values were a training row of its model

- `results.trained_on`: true when the scored row's feature values hash to one of the model's training rows (its
  metadata's `training_rows`), false when not; NULL when not checked: a rejected row, or a row without a supplied
  diagnosis (the check serves the validation view, which only rows with a supplied diagnosis enter).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("results", sa.Column("trained_on", sa.Boolean(), nullable=True))
    op.create_check_constraint(
        op.f("ck_results_trained_on_if_scored"), "results", "trained_on IS NULL OR diagnosis IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_results_trained_on_if_scored"), "results", type_="check")
    op.drop_column("results", "trained_on")
