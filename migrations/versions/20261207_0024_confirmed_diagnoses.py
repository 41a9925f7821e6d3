"""a scored row's diagnosis, confirmed later

- `confirmed_diagnoses`: one per scored row at most (the job and row number), M or B, what confirmed it
  (histology, cytology or follow-up), whether the row's values were a training row of the model, who recorded it
  and when. The results never change; a job's removal removes these with its results.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "confirmed_diagnoses",
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("row_number", sa.Integer(), nullable=False),
        sa.Column("diagnosis", sa.String(length=1), nullable=False),
        sa.Column("basis", sa.String(length=16), nullable=False),
        sa.Column("trained_on", sa.Boolean(), nullable=True),
        sa.Column("recorded_by", sa.String(length=254), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("diagnosis IN ('M', 'B')", name=op.f("ck_confirmed_diagnoses_diagnosis")),
        sa.CheckConstraint(
            "basis IN ('histology', 'cytology', 'follow-up')", name=op.f("ck_confirmed_diagnoses_basis")
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_confirmed_diagnoses_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", "row_number", name=op.f("pk_confirmed_diagnoses")),
    )


def downgrade() -> None:
    op.drop_table("confirmed_diagnoses")
