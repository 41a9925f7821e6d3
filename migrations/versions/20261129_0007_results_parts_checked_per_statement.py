"""PostgreSQL checks that results name a stored part once per statement, not once per row

A foreign key checks each inserted row on its own: one lookup and one row lock per result row. Measured end to end
(`bench/scaling.py`, a 1M-row upload, medians of three runs, 2 cores, PostgreSQL 15), a job took 14.10 s with one
worker and 10.80 s with two under the per-row key; 10.49 s and 7.59 s with these triggers; 9.89 s and 7.55 s with no
check at all. Writing 1M result rows alone took 6.27 s with the key and 2.14 s with the triggers. A third of a job's
time is far outside run-to-run noise, so the rule is held by triggers, for each statement as a whole, on the set of
rows it wrote; there is no foreign key beside them:

- inserting or updating results locks each part they name (`FOR KEY SHARE`, the lock a foreign key takes) and
  refuses the statement, with SQLSTATE 23503 as a foreign key would, if any part is not stored;
- deleting parts deletes their results (as `ON DELETE CASCADE` did), and truncating the parts truncates the results;
- a part's key cannot change while results name it.

A part locked by a writer cannot be deleted until the writer commits, and a writer waiting on a part being deleted
finds it gone: either way no result outlives its part. The delete runs in READ COMMITTED, where each statement of
the trigger sees what others committed before it; at a stricter isolation level it would not see results committed
after its snapshot, so a delete that takes parts is refused there rather than leave their results.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FOREIGN_KEY = "fk_results_job_id_job_input_parts"

CHECK_PARTS = """
CREATE FUNCTION results_check_parts() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    named bigint;
    locked bigint;
    missing record;
BEGIN
    SELECT count(*) INTO named FROM (SELECT DISTINCT job_id, part FROM new_rows) AS n;
    SELECT count(*) INTO locked FROM (
        SELECT FROM job_input_parts AS p
        WHERE (p.job_id, p.part) IN (SELECT job_id, part FROM new_rows)
        ORDER BY p.job_id, p.part
        FOR KEY SHARE
    ) AS l;
    IF locked < named THEN
        SELECT n.job_id, n.part INTO missing FROM new_rows AS n
        WHERE NOT EXISTS (SELECT FROM job_input_parts AS p WHERE p.job_id = n.job_id AND p.part = n.part)
        LIMIT 1;
        RAISE EXCEPTION 'insert or update on table "results" names a part that is not stored'
            USING ERRCODE = 'foreign_key_violation',
                  DETAIL = format('Key (job_id, part)=(%s, %s) is not present in table "job_input_parts".',
                                  missing.job_id, missing.part);
    END IF;
    RETURN NULL;
END
$$
"""

DELETE_RESULTS = """
CREATE FUNCTION job_input_parts_delete_results() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' AND EXISTS (SELECT FROM old_rows) THEN
        RAISE EXCEPTION 'parts of job inputs are deleted only in READ COMMITTED transactions'
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'their results are deleted with them, which needs a snapshot taken after the delete';
    END IF;
    DELETE FROM results AS r USING old_rows AS o WHERE r.job_id = o.job_id AND r.part = o.part;
    RETURN NULL;
END
$$
"""

TRUNCATE_RESULTS = """
CREATE FUNCTION job_input_parts_truncate_results() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE results;
    RETURN NULL;
END
$$
"""

KEEP_KEY = """
CREATE FUNCTION job_input_parts_keep_key() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT FROM results WHERE job_id = OLD.job_id AND part = OLD.part) THEN
        RAISE EXCEPTION 'update on table "job_input_parts" changes the key of a part that results name'
            USING ERRCODE = 'foreign_key_violation',
                  DETAIL = format('Key (job_id, part)=(%s, %s) is still referenced from table "results".',
                                  OLD.job_id, OLD.part);
    END IF;
    RETURN NULL;
END
$$
"""

TRIGGERS = (
    "CREATE TRIGGER results_check_parts_insert AFTER INSERT ON results "
    "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION results_check_parts()",
    "CREATE TRIGGER results_check_parts_update AFTER UPDATE ON results "
    "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION results_check_parts()",
    "CREATE TRIGGER job_input_parts_delete_results AFTER DELETE ON job_input_parts "
    "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION job_input_parts_delete_results()",
    "CREATE TRIGGER job_input_parts_truncate_results AFTER TRUNCATE ON job_input_parts "
    "FOR EACH STATEMENT EXECUTE FUNCTION job_input_parts_truncate_results()",
    "CREATE TRIGGER job_input_parts_keep_key AFTER UPDATE OF job_id, part ON job_input_parts FOR EACH ROW "
    "WHEN (OLD.job_id IS DISTINCT FROM NEW.job_id OR OLD.part IS DISTINCT FROM NEW.part) "
    "EXECUTE FUNCTION job_input_parts_keep_key()",
)
DROPS = (
    "DROP TRIGGER job_input_parts_keep_key ON job_input_parts",
    "DROP TRIGGER job_input_parts_truncate_results ON job_input_parts",
    "DROP TRIGGER job_input_parts_delete_results ON job_input_parts",
    "DROP TRIGGER results_check_parts_update ON results",
    "DROP TRIGGER results_check_parts_insert ON results",
    "DROP FUNCTION job_input_parts_keep_key()",
    "DROP FUNCTION job_input_parts_truncate_results()",
    "DROP FUNCTION job_input_parts_delete_results()",
    "DROP FUNCTION results_check_parts()",
)


def upgrade() -> None:
    op.drop_constraint(FOREIGN_KEY, "results", type_="foreignkey")
    for statement in (CHECK_PARTS, DELETE_RESULTS, TRUNCATE_RESULTS, KEEP_KEY, *TRIGGERS):
        op.execute(sa.text(statement))


def downgrade() -> None:
    for statement in DROPS:
        op.execute(statement)
    op.create_foreign_key(
        FOREIGN_KEY, "results", "job_input_parts", ["job_id", "part"], ["job_id", "part"], ondelete="CASCADE"
    )
