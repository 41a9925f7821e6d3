"""results name the stored part of the input they were read from; their foreign key points there, not at the job

The key from `results` to `jobs` made PostgreSQL lock the job's row for every result row it checked. When two
workers write parts of one job at once, both hold that one row's lock, which costs PostgreSQL extra CPU.
Each part's rows now reference that part, which only its own writer touches. The guarantee stays whole: a part cannot exist without its job's input, nor the input without
its job, and deleting any of them still takes the results with it.

Existing rows get the part that holds their row number. A row no part holds stops the upgrade and says how many:
nothing is guessed.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.add_column(sa.Column("part", sa.Integer(), nullable=True))
    # Parts hold consecutive row numbers from their first_row on: a row's part is the last that starts at or before it.
    op.execute(
        "UPDATE results SET part = (SELECT max(p.part) FROM job_input_parts p "
        "WHERE p.job_id = results.job_id AND p.first_row <= results.row_number)"
    )
    unplaced = op.get_bind().execute(sa.text("SELECT count(*) FROM results WHERE part IS NULL")).scalar_one()
    if unplaced:
        raise RuntimeError(
            f"{unplaced} result rows have a row number before the first stored part of their job's input; "
            "the upgrade stopped before changing the key"
        )
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.alter_column("part", existing_type=sa.Integer(), nullable=False)
        batch_op.drop_constraint("fk_results_job_id_jobs", type_="foreignkey")
        batch_op.create_foreign_key(
            op.f("fk_results_job_id_job_input_parts"),
            "job_input_parts",
            ["job_id", "part"],
            ["job_id", "part"],
            ondelete="CASCADE",
        )


def downgrade() -> None:
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.drop_constraint("fk_results_job_id_job_input_parts", type_="foreignkey")
        batch_op.create_foreign_key(op.f("fk_results_job_id_jobs"), "jobs", ["job_id"], ["id"], ondelete="CASCADE")
        batch_op.drop_column("part")
