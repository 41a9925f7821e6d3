"""One typed settings object, read from the environment."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from limits import parse as parse_limit
from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.schema import Role

ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Everything configurable. The defaults are the embedded mode of `make run`: a PostgreSQL server started from a
    wheel, with its data under var/pg, and a file broker under var/broker."""

    model_config = SettingsConfigDict(env_prefix="CYTOSCORE_", extra="ignore", frozen=True, populate_by_name=True)

    # The three names the contract fixes carry no prefix. No DATABASE_URL: the embedded PostgreSQL under var_dir.
    database_url: str = Field("", validation_alias="DATABASE_URL")
    broker_url: str = Field("", validation_alias="BROKER_URL")
    port: int = Field(5000, validation_alias="PORT")

    var_dir: Path = ROOT / "var"
    models_dir: Path = ROOT / "models"
    default_model: str = "wdbc-rf4"

    max_upload_bytes: int = 512 * 1024 * 1024
    max_rows: int = 2_000_000
    max_columns: int = 200
    # JSON cases are parsed whole in the web's memory, so they are capped well below files (which are streamed):
    # in bytes, and in cases per request; a clinician enters a few cases at a time.
    json_max_bytes: int = 4 * 1024 * 1024
    json_max_cases: int = 5_000
    clinician_max_cases: int = 10
    batch_rows: int = 20_000  # rows validated and scored together, and written in one transaction
    # A plainly written CSV of at least this size is stored in parts of about part_bytes, which all workers score at
    # once; the worker that claims such a job asks up to worker_fan_out others to join.
    parallel_min_bytes: int = 16 * 1024 * 1024
    part_bytes: int = 4 * 1024 * 1024
    worker_fan_out: int = 8

    # A single case's answer carries each measurement's contribution; other jobs only when asked, up to this many rows.
    explain_max_rows: int = 1_000

    # Celery. The task limits stay below the broker's visibility timeout, so a running task is never redelivered.
    task_soft_time_limit: int = 3000
    task_time_limit: int = 3300
    visibility_timeout: int = 3600
    broker_timeout: float = 2.0
    broker_health_check_interval: int = 10
    queue: str = "cytoscore"

    # Reconciliation of the database with the queue. The defaults bring any job back within a minute.
    reconcile_interval: float = 15.0
    queued_resend_after: float = 30.0
    heartbeat_stale_after: float = 30.0
    heartbeat_interval: float = 5.0
    max_attempts: int = 3
    # After a worker is told to stop, a running job keeps going this long, then is handed back between batches.
    shutdown_grace: float = 5.0
    # How long a job's database writes keep retrying while PostgreSQL is unreachable (a restart, a failover).
    db_retry_for: float = 60.0

    web_workers: int = 2
    worker_concurrency: int = 2

    # Accounts and doors. SECRET_KEY is required outside the embedded mode (which keeps one under var/).
    secret_key: str = Field("", validation_alias="SECRET_KEY", repr=False)
    secure_cookies: bool | None = None  # None: Secure cookies whenever not embedded (TLS in front)
    session_idle_minutes: int = 30
    # Who must sign in with an authenticator app's code after the password (shared.two_step): "all", or roles
    # separated by commas ("admin", "admin,lab"); one without it is sent to set it up before anything else.
    # Empty: each person chooses.
    require_two_step: str = ""
    # Failed sign-ins: per address, whatever the email (Flask-Limiter); per email, from any address, after which each
    # try waits twice as long as the one before (shared.signins.Backoff).
    login_rate_limit: str = "30 per minute"
    login_account_limit: str = "10 per 15 minutes"
    # Reverse proxies in front whose X-Forwarded-For and X-Forwarded-Proto are believed (Werkzeug's ProxyFix).
    trusted_proxies: int = Field(0, validation_alias="TRUSTED_PROXIES", ge=0)
    jobs_rate_limit: str = "120 per minute"
    max_jobs_in_flight: int = 20
    retention_days: int = 30
    log_json: bool | None = None  # None: JSON lines whenever not embedded
    # The pages, PDF reports and day filters show times in this IANA zone, with its abbreviation (CET, EST);
    # the JSON API, CSV and XLSX keep UTC with an offset.
    time_zone: str = "UTC"

    # Webhooks. Only https URLs whose host resolves to public addresses, unless the host is listed here (comma-
    # separated names or addresses, as written in the URL): a listed host may also be http and private.
    webhook_allowed_hosts: str = ""
    # A failed delivery is tried again after webhook_backoff seconds, then 3 times as long each time.
    webhook_backoff: float = 10.0
    webhook_max_attempts: int = 6
    webhook_timeout: float = 5.0

    @model_validator(mode="after")
    def _bounds_hold(self) -> Settings:
        if not self.task_soft_time_limit < self.task_time_limit < self.visibility_timeout:
            raise ValueError("need task_soft_time_limit < task_time_limit < visibility_timeout")
        if not 0 < self.heartbeat_interval < self.heartbeat_stale_after:
            raise ValueError("need 0 < heartbeat_interval < heartbeat_stale_after")
        if self.max_attempts < 1 or self.reconcile_interval <= 0:
            raise ValueError("need max_attempts >= 1 and reconcile_interval > 0")
        for limit in (self.login_rate_limit, self.login_account_limit, self.jobs_rate_limit):
            parse_limit(limit)  # a limit that does not parse stops the start, not the first sign-in
        roles = {"all", *Role}
        if unknown := self.two_step_roles - roles:
            raise ValueError(f"CYTOSCORE_REQUIRE_TWO_STEP: {', '.join(sorted(unknown))} is not all or a role "
                             f"({', '.join(sorted(roles - {'all'}))})")  # fmt: skip
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"CYTOSCORE_TIME_ZONE {self.time_zone!r}: not a time zone; use a name like "
                             "Europe/Berlin or America/New_York") from None  # fmt: skip
        return self

    @property
    def two_step_roles(self) -> frozenset[str]:
        return frozenset(r.strip().lower() for r in self.require_two_step.split(",") if r.strip())

    def two_step_required(self, role: str) -> bool:
        """Whether a person of this role must sign in with two-step sign-in."""
        return bool({"all", role} & self.two_step_roles)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)  # cached by zoneinfo itself

    @property
    def webhook_hosts(self) -> frozenset[str]:
        return frozenset(h.strip().lower() for h in self.webhook_allowed_hosts.split(",") if h.strip())

    @property
    def cases_queue(self) -> str:
        """The queue of single cases and jobs of a few rows, which every worker keeps a pool process for."""
        return f"{self.queue}.cases"

    @property
    def embedded(self) -> bool:
        """The one-machine mode of `make run`: the embedded PostgreSQL or the file broker."""
        return not self.database_url or self.broker_url.startswith("filesystem")

    def model_post_init(self, __context: object) -> None:
        if not self.broker_url:  # the file broker has no host; naming one spares the log kombu's warning of none
            object.__setattr__(self, "broker_url", "filesystem://localhost/")

    @property
    def broker_folder(self) -> Path:
        return self.var_dir / "broker"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
