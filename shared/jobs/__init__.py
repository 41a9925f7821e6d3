"""Job state has one owner: every statement that writes jobs, their inputs and parts, the part ledger or results.

Nothing outside this package writes those tables (`make lint` checks who imports it). Functions take a session
and never commit: the web request or the worker's unit of work owns the transaction. In the order a job meets them:

- `create`: the web stores a job and its input, whole as one part, or as the parts of a plain CSV while it checks them,
  or copies another job's stored input for a rescore with another model;
- `send`: once that commits, the job's id goes on the queue;
- `claims`: a worker claims the job for a new attempt (the fence), or joins the running attempt of a job in parts;
  heartbeats, hand-backs and failures are fenced by the attempt;
- `units`: the units of work, one per stored part: claimed, then written batch by batch; the write that leaves no
  unit undone finishes the job;
- `stored`: the stored input, written in parts and read back a block at a time;
- `reconciler`: the job rows are the truth, the queue a hint: requeue, give up, resend;
- `review`: a job held for review (its input looked misread) is confirmed by a lab user;
- `cancel`: a person stops a job that is queued or running; the attempt's next fenced write finds it gone;
- `retention`: the inputs and results of old jobs are purged, or of one job a person removes.
"""

from shared.jobs.cancel import cancel
from shared.jobs.claims import (
    GAVE_UP,
    Attempt,
    Superseded,
    claim_job,
    close_if_exhausted,
    count_rows,
    fail,
    hand_back,
    heartbeat,
    join_attempt,
    still_receiving,
)
from shared.jobs.create import create_job, create_rescore, create_upload
from shared.jobs.reconciler import Report, Stuck, reconcile, stuck_jobs
from shared.jobs.retention import purge, remove
from shared.jobs.review import confirm
from shared.jobs.send import SMALL_JOB_ROWS, invite_helpers, mark_unsent, publish, queue_for, send
from shared.jobs.stored import spool_input, spool_part
from shared.jobs.units import PartTaken, Unit, claim_part, id_hashes, only_part, write_batch

__all__ = [
    "GAVE_UP",
    "SMALL_JOB_ROWS",
    "Attempt",
    "PartTaken",
    "Report",
    "Stuck",
    "Superseded",
    "Unit",
    "cancel",
    "claim_job",
    "claim_part",
    "close_if_exhausted",
    "confirm",
    "count_rows",
    "create_job",
    "create_rescore",
    "create_upload",
    "fail",
    "hand_back",
    "heartbeat",
    "id_hashes",
    "invite_helpers",
    "join_attempt",
    "mark_unsent",
    "only_part",
    "publish",
    "purge",
    "queue_for",
    "reconcile",
    "remove",
    "send",
    "spool_input",
    "spool_part",
    "still_receiving",
    "stuck_jobs",
    "write_batch",
]
