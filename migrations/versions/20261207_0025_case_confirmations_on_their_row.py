"""a case opened from a file's row keeps its confirmed diagnosis on that row

A case opened from a row of a file (`jobs.source_job_id`, `source_row`) is that row scored again by the same
model. Its confirmed diagnosis is now kept on the row while the file's results are there
(`api.job_views.confirmation_home`), so the file's validation view and the model's figures count it once. One
recorded on such a case before this revision is moved to its row when the row has none (the latest, if several
people's cases of the row have one). Any other stays where it is, unchanged, and the upgrade says how many: no
diagnosis is chosen over another here.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-07
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A case's own confirmed diagnosis (always row 1) whose file's results are still there, and that row.
MOVE = """
    WITH moving AS (
        SELECT DISTINCT ON (j.source_job_id, j.source_row) c.job_id AS case_job, j.source_job_id, j.source_row
        FROM confirmed_diagnoses c
        JOIN jobs j ON j.id = c.job_id AND c.row_number = 1 AND j.source_row IS NOT NULL
        JOIN jobs s ON s.id = j.source_job_id AND s.status = 'succeeded' AND s.purged_at IS NULL
        WHERE NOT EXISTS (SELECT 1 FROM confirmed_diagnoses r
                          WHERE r.job_id = j.source_job_id AND r.row_number = j.source_row)
        ORDER BY j.source_job_id, j.source_row, c.recorded_at DESC
    )
    UPDATE confirmed_diagnoses c SET job_id = m.source_job_id, row_number = m.source_row
    FROM moving m WHERE c.job_id = m.case_job AND c.row_number = 1
"""
LEFT = """
    SELECT count(*)
    FROM confirmed_diagnoses c
    JOIN jobs j ON j.id = c.job_id AND c.row_number = 1 AND j.source_row IS NOT NULL
    JOIN jobs s ON s.id = j.source_job_id AND s.status = 'succeeded' AND s.purged_at IS NULL
"""


def upgrade() -> None:
    bind = op.get_bind()
    moved = bind.execute(sa.text(MOVE)).rowcount
    left = bind.execute(sa.text(LEFT)).scalar_one()
    log = logging.getLogger("alembic.runtime.migration")
    log.info("confirmed diagnoses moved from cases to the rows they were opened from: %d", moved)
    if left:
        log.warning("%d confirmed diagnoses of cases stay on the case: their row has its own", left)


def downgrade() -> None:
    """Nothing to undo in the tables: a moved confirmation is the row's, which the earlier code reads too."""
