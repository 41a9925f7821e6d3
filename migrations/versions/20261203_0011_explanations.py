"""a job may ask for explanations; a result keeps its own

- `jobs.explain`: the worker computes each scored row's per-feature contributions (a single case always, other jobs
  when asked, up to CYTOSCORE_EXPLAIN_MAX_ROWS rows).
- `results.explanation`: `{"base": …, "contributions": {feature: …}}`, as the API gives it (json, not jsonb: the
  contributions keep the model's feature order); NULL when not asked for and for a rejected row.

Revision ID: 0011
Revises: 0009
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("explain", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column("results", sa.Column("explanation", postgresql.JSON(), nullable=True))
    op.create_check_constraint(
        op.f("ck_results_explained_if_scored"), "results", "explanation IS NULL OR diagnosis IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_results_explained_if_scored"), "results", type_="check")
    op.drop_column("results", "explanation")
    op.drop_column("jobs", "explain")
