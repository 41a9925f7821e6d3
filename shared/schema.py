"""The tables: jobs, their inputs, one result per input row; accounts, their sessions and tokens, the audit trail;
webhooks and their deliveries."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    Uuid,
    false,
    func,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import JSON
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: DateTime(timezone=True)}


class JobKind(StrEnum):
    FORM = "form"
    UPLOAD = "upload"


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    NEEDS_REVIEW = "needs_review"  # every row read, but the input looks misread: results held until confirmed
    CANCELLED = "cancelled"  # stopped by a person before it finished: its results are never served

    @property
    def terminal(self) -> bool:
        return self not in (JobStatus.QUEUED, JobStatus.RUNNING)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint("kind IN ('form', 'upload')", name="kind"),
        CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'needs_review', 'cancelled')", name="status"
        ),
        # The jobs list pages newest first after the last row seen, for everyone or for one owner (migration 0014).
        Index("ix_jobs_created_at_id", "created_at", "id"),
        Index("ix_jobs_owner_id_created_at_id", "owner_id", "created_at", "id"),
        # The cases opened from a job's rows, found by their source (migration 0020).
        Index(
            "ix_jobs_source_job_id_source_row",
            "source_job_id",
            "source_row",
            postgresql_where=text("source_job_id IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED, index=True)
    model_name: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(32))
    model_sha256: Mapped[str] = mapped_column(String(64))
    input_filename: Mapped[str | None] = mapped_column(String(255))
    input_sha256: Mapped[str] = mapped_column(String(64))
    input_format: Mapped[str] = mapped_column(String(16))
    input_delimiter: Mapped[str | None] = mapped_column(String(8))
    rows_total: Mapped[int] = mapped_column(Integer, default=0)
    rows_scored: Mapped[int] = mapped_column(Integer, default=0)
    rows_rejected: Mapped[int] = mapped_column(Integer, default=0)
    rows_out_of_range: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # scored, but flagged
    review: Mapped[str | None] = mapped_column(Text)  # why the job was held for review (docs/plausibility.md)
    reviewed_at: Mapped[datetime | None]  # when a lab user confirmed the held results
    reviewed_by: Mapped[str | None] = mapped_column(String(254))
    cancelled_by: Mapped[str | None] = mapped_column(String(254))  # who cancelled it (status cancelled)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    enqueued_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    purged_at: Mapped[datetime | None]  # when its input and results were removed
    purged_by: Mapped[str | None] = mapped_column(String(254))  # who removed them; NULL for the retention purge
    explain: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())  # contributions per row
    # While the web stores a large upload part by part (the workers score the parts already stored): when it stored
    # the last one. NULL once the input is whole; a job is not finished while it is set (shared.jobs.create).
    receiving_at: Mapped[datetime | None]
    # A single case opened from one row of another job (api/row_case.py): that job, and the row's number in it.
    source_job_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    source_row: Mapped[int | None]


class JobInput(Base):
    """The bytes the user sent, so a worker on any host needs only the database and the broker."""

    __tablename__ = "job_inputs"
    __table_args__ = (CheckConstraint("layout IN ('plain', 'csv', 'xlsx', 'json')", name="layout"),)

    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    media_type: Mapped[str] = mapped_column(String(100))
    layout: Mapped[str] = mapped_column(String(8))
    # A CSV stored in several parts: its header record, which every part after the first is read with.
    header: Mapped[bytes | None] = mapped_column(LargeBinary)


class JobInputPart(Base):
    """A stretch of the input cut at a record boundary: part 0 starts with the header, later parts hold rows only."""

    __tablename__ = "job_input_parts"

    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("job_inputs.job_id", ondelete="CASCADE"), primary_key=True)
    part: Mapped[int] = mapped_column(Integer, primary_key=True)
    first_row: Mapped[int] = mapped_column(Integer)
    row_count: Mapped[int] = mapped_column(Integer)
    content: Mapped[bytes] = mapped_column(LargeBinary)


class PartClaim(Base):
    """The part ledger: which worker holds a part of a job stored in several parts, its progress, and whether it is
    done. A job stored in one part has no ledger row: the attempt that claims the job holds its only part."""

    __tablename__ = "part_claims"

    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    part: Mapped[int] = mapped_column(Integer, primary_key=True)
    attempt: Mapped[int] = mapped_column(Integer)
    token: Mapped[uuid.UUID] = mapped_column(Uuid)
    worker: Mapped[str | None] = mapped_column(String(255))
    claimed_at: Mapped[datetime]
    claims: Mapped[int] = mapped_column(Integer, default=1)  # 1: no result of the part can be stored before this claim
    done_at: Mapped[datetime | None]
    rows_scored: Mapped[int] = mapped_column(Integer, default=0)  # by the current claim, so far
    rows_rejected: Mapped[int] = mapped_column(Integer, default=0)
    # What makes the input suspect, so far (`shared.intake.review.Tally`): added up when the job's last part is written.
    rows_out_of_range: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    rows_implausible: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    rows_geometry: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    rows_far: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # A 64-bit hash of each row's case id, until the job is done: duplicates are found across parts from these.
    id_hashes: Mapped[bytes | None] = mapped_column(LargeBinary)


class Result(Base):
    __tablename__ = "results"
    __table_args__ = (
        CheckConstraint("diagnosis IN ('M', 'B')", name="diagnosis"),
        CheckConstraint(
            "(diagnosis IS NULL) = (error IS NOT NULL) AND (diagnosis IS NULL) = (probability_malignant IS NULL)",
            name="scored_or_rejected",
        ),
        CheckConstraint("explanation IS NULL OR diagnosis IS NOT NULL", name="explained_if_scored"),
        CheckConstraint("trained_on IS NULL OR diagnosis IS NOT NULL", name="trained_on_if_scored"),
    )

    job_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    row_number: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[str | None] = mapped_column(String(64))
    diagnosis: Mapped[str | None] = mapped_column(String(1))
    probability_malignant: Mapped[float | None] = mapped_column(Float(precision=53))
    model_version: Mapped[str] = mapped_column(String(32))
    supplied_diagnosis: Mapped[str | None] = mapped_column(String(16))
    out_of_range: Mapped[str | None] = mapped_column(Text)
    warning: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    # {"base": …, "contributions": {feature: …}}: base + contributions = probability_malignant (shared.explain).
    # json, not jsonb: the contributions keep the model's feature order.
    explanation: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The stored part of the input the row was read from. No result outlives its part: triggers check each
    # statement's rows against job_input_parts and delete a part's results with it (migration 0007 says why not a
    # foreign key).
    part: Mapped[int] = mapped_column(Integer)
    # Whether the row's feature values were one of the model's training rows (its metadata's hashes); NULL when not
    # checked: rejected, or without a supplied diagnosis (only the validation view asks).
    trained_on: Mapped[bool | None] = mapped_column(Boolean)


class Basis(StrEnum):
    """What confirmed a case's diagnosis after it was scored."""

    HISTOLOGY = "histology"  # the excised or biopsied tissue
    CYTOLOGY = "cytology"  # a repeat aspirate read by a cytopathologist
    FOLLOW_UP = "follow-up"  # clinical and imaging follow-up (a benign answer watched over time)


class ConfirmedDiagnosis(Base):
    """A scored row's diagnosis as later confirmed (histology, say), recorded by a person who may see the job: the
    result itself never changes. Checked against the answer in the model's figures of use (api/model_use.py)."""

    __tablename__ = "confirmed_diagnoses"
    __table_args__ = (
        CheckConstraint("diagnosis IN ('M', 'B')", name="diagnosis"),
        CheckConstraint("basis IN ('histology', 'cytology', 'follow-up')", name="basis"),
    )

    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    row_number: Mapped[int] = mapped_column(Integer, primary_key=True)
    diagnosis: Mapped[str] = mapped_column(String(1))
    basis: Mapped[str] = mapped_column(String(16))
    # Whether the row's values were one of the model's training rows, as `Result.trained_on`; NULL when unknown
    # (the model's artifact has changed since the job was scored).
    trained_on: Mapped[bool | None] = mapped_column(Boolean)
    recorded_by: Mapped[str] = mapped_column(String(254))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class Role(StrEnum):
    CLINICIAN = "clinician"  # single cases
    LAB = "lab"  # uploads and single cases
    ADMIN = "admin"  # everything, all jobs, user management


class User(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('clinician', 'lab', 'admin')", name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # A one-time password (the first start, an admin's reset): every page but the change of password is closed.
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[datetime | None]
    last_login_at: Mapped[datetime | None]
    # Two-step sign-in (`shared.two_step`): the authenticator's base32 secret, since when, and the last 30-second
    # step whose code signed in (a code is good once). NULL secret: the password alone signs in.
    totp_secret: Mapped[str | None] = mapped_column(String(32))
    totp_since: Mapped[datetime | None]
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)


class UserSession(Base):
    """A signed-in browser. The cookie carries a secret whose sha256 is stored here; every request finds its row,
    so ending the row (sign-out, a new password, a disabled account) ends the session wherever the cookie went."""

    __tablename__ = "user_sessions"
    __table_args__ = (CheckConstraint("(ended_at IS NULL) = (ended_by IS NULL)", name="ended_with_reason"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    address: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(255))
    ended_at: Mapped[datetime | None]
    ended_by: Mapped[str | None] = mapped_column(String(32))  # sign-out, idle, password, disabled, reset, admin
    # A two-step secret shown on this browser's set-up page and not yet confirmed: kept here, not in the cookie.
    totp_pending: Mapped[str | None] = mapped_column(String(32))


class ApiToken(Base):
    """A bearer token; only its sha256 is stored."""

    __tablename__ = "api_tokens"
    __table_args__ = (CheckConstraint("expires_at > created_at", name="expires_after_created"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    # May only read (GET): a script that downloads results cannot send, change or remove anything.
    read_only: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class RecoveryCode(Base):
    """A one-use code that signs in instead of an authenticator's, for a lost phone; only its sha256 is stored."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    used_at: Mapped[datetime | None]


class LoginThrottle(Base):
    """Failed sign-ins per email, from any address, whether or not the email has an account (so the answer never
    tells). Past the free tries each failure makes the next try wait twice as long: a back-off, never a lock."""

    __tablename__ = "login_throttle"
    __table_args__ = (CheckConstraint("failures >= 1", name="failures"),)

    email: Mapped[str] = mapped_column(String(254), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    last_failure_at: Mapped[datetime]
    blocked_until: Mapped[datetime | None]


class AuditEvent(Base):
    """Who did what to which job, and every login and user change. Never patient measurements."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str | None] = mapped_column(String(254), index=True)
    action: Mapped[str] = mapped_column(String(32))
    job_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)  # no foreign key: purges keep the trail
    address: Mapped[str | None] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(254), index=True)  # the account an action was about
    detail: Mapped[str | None] = mapped_column(Text)


class Webhook(Base):
    """An owner's URL, told when each of their jobs finishes. The secret is kept as given: it signs every delivery."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # out of attempts


class WebhookDelivery(Base):
    """One finished job told to one hook. Made by the trigger of migration 0016 when a job finishes; sent by
    `shared.webhooks.deliver_due` until a 2xx answer or the last attempt."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="status"),
        CheckConstraint("(status = 'pending') = (next_attempt_at IS NOT NULL)", name="due_if_pending"),
        Index("ix_webhook_deliveries_due", "next_attempt_at", postgresql_where=text("status = 'pending'")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING, server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None]
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    delivered_at: Mapped[datetime | None]
