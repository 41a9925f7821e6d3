"""the part ledger is `part_claims`, counts its claims, and an input says its layout

- `job_chunks` becomes `part_claims`: "chunk" meant both a claimed part and a batch of rows. Its rows now carry the
  progress of the current claim (set with every batch written, not once at the end) and `claims`, how many times the
  part was claimed: on the first claim no result of the part can be stored yet, so its rows are copied straight in.
- `job_inputs.layout` says how the input is written, and so which reader reads it: `plain` (a CSV the web checked
  and cut into parts), `csv`, `xlsx` or `json`. Existing inputs get theirs from what is stored: a header kept for
  later parts means a plain CSV; a single-part CSV before this revision is read as `csv`, which gives the same rows.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def upgrade() -> None:
    op.rename_table("job_chunks", "part_claims")
    op.execute("ALTER TABLE part_claims RENAME CONSTRAINT pk_job_chunks TO pk_part_claims")
    op.execute("ALTER TABLE part_claims RENAME CONSTRAINT fk_job_chunks_job_id_jobs TO fk_part_claims_job_id_jobs")
    op.add_column("part_claims", sa.Column("claims", sa.Integer(), nullable=False, server_default="1"))
    op.alter_column("part_claims", "claims", server_default=None)

    op.add_column("job_inputs", sa.Column("layout", sa.String(length=8), nullable=True))
    op.execute(
        sa.text(
            "UPDATE job_inputs SET layout = CASE WHEN media_type = 'application/json' THEN 'json' "
            "WHEN media_type = :xlsx THEN 'xlsx' WHEN header IS NOT NULL THEN 'plain' ELSE 'csv' END"
        ).bindparams(xlsx=XLSX)
    )
    op.alter_column("job_inputs", "layout", nullable=False)
    op.create_check_constraint(op.f("ck_job_inputs_layout"), "job_inputs", "layout IN ('plain', 'csv', 'xlsx', 'json')")


def downgrade() -> None:
    op.drop_constraint(op.f("ck_job_inputs_layout"), "job_inputs", type_="check")
    op.drop_column("job_inputs", "layout")
    op.drop_column("part_claims", "claims")
    op.execute("ALTER TABLE part_claims RENAME CONSTRAINT fk_part_claims_job_id_jobs TO fk_job_chunks_job_id_jobs")
    op.execute("ALTER TABLE part_claims RENAME CONSTRAINT pk_part_claims TO pk_job_chunks")
    op.rename_table("part_claims", "job_chunks")
