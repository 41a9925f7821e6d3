"""The shapes of /api/v1's requests and answers, as pydantic models: the handlers read their query strings with them,
and the OpenAPI document (`api.openapi`) is made from them, so the two cannot drift apart."""

from __future__ import annotations

from typing import Any, Literal

from flask import abort
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

# --- query strings ----------------------------------------------------------------------------------------------


class Query(BaseModel):
    model_config = ConfigDict(extra="ignore")

    @classmethod
    def parse(cls, args: Any) -> Any:
        """The query string read with this model; 400 naming the parameter otherwise."""
        try:
            return cls.model_validate(args.to_dict() if hasattr(args, "to_dict") else dict(args))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "query"
            abort(400, description=f"{where}: {first['msg']}")


class WaitQuery(Query):
    wait: float | None = Field(
        None, ge=0, le=60, description="Answer as soon as the job finishes, or after at most this many seconds."
    )

    @field_validator("wait", mode="before")
    @classmethod
    def _at_most_a_minute(cls, value: Any) -> Any:
        """More than 60 waits 60 (as it always has); what is not a number is refused."""
        try:
            return min(float(value), 60.0) if value not in (None, "") else None
        except (TypeError, ValueError):
            return value


class CreateQuery(WaitQuery):
    explain: Literal["", "0", "1"] | None = Field(
        None, description="1: each scored row gets its per-feature contributions; 0: none, even for a single case."
    )


class ResultsQuery(Query):
    format: Literal["json", "csv", "xlsx"] = "json"
    show: Literal["all", "rejected", "flagged", "differs", "confirmed-differs"] = Field(
        "all",
        description="only the rejected rows, those outside the training range (flagged), or those whose answer "
        "differs from the supplied diagnosis, or from the diagnosis confirmed after scoring; as the job page's filters",
    )


class ErrorsQuery(Query):
    format: Literal["csv", "json"] = "csv"


class TemplateQuery(Query):
    format: Literal["csv", "xlsx"] = "csv"


class CompareQuery(Query):
    format: Literal["json", "csv"] = "json"


class UseQuery(Query):
    format: Literal["json", "csv"] = "json"


class ListQuery(Query):
    """The jobs list's arguments (read by `api.job_search`, which answers 400 listing every problem)."""

    q: str | None = Field(None, description="a file name contains it (any letter case), or a row has this case id")
    status: str | None = Field(None, description="queued, running, succeeded, failed, needs_review or cancelled")
    model: str | None = Field(None, description="a model name")
    since: str | None = Field(
        None, alias="from", description="the first day, YYYY-MM-DD, in the site's time zone (CYTOSCORE_TIME_ZONE)"
    )
    to: str | None = Field(None, description="the last day, YYYY-MM-DD (included), in the site's time zone")
    owner: str | None = Field(None, description="an email (admins only)")
    limit: str | None = Field(None, description="jobs per page, 1 to 200 (default 50)")
    after: str | None = Field(None, description="the position the previous page's `next` carries")


# --- bodies -----------------------------------------------------------------------------------------------------

Value = float | str | None


class Cases(BaseModel):
    """Cases as JSON: each an object of the model's features (any accepted spelling), an optional `case_id` (or
    `id`) and an optional `diagnosis`; values are numbers or text in the one number grammar."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "cases": [
                        {
                            "case_id": "c1",
                            "radius_mean": 17.99,
                            "texture_mean": 10.38,
                            "smoothness_mean": 0.1184,
                            "compactness_mean": 0.2776,
                        }
                    ]
                },
            ]
        }
    )

    cases: list[dict[str, Value]] = Field(
        min_length=1,
        max_length=5000,
        description="At most CYTOSCORE_JSON_MAX_CASES (5,000) per request, 10 from a clinician, and at most "
        "CYTOSCORE_JSON_MAX_BYTES (4 MiB) of JSON; more goes as a file upload.",
    )
    model: str | None = Field(None, description="A model name from /api/v1/models; the default model if left out.")


class Upload(BaseModel):
    """A CSV or XLSX file (lab and admin roles)."""

    file: bytes = Field(json_schema_extra={"format": "binary", "contentMediaType": "application/octet-stream"})
    model: str | None = None


# --- answers ----------------------------------------------------------------------------------------------------


class Error(BaseModel):
    error: str


class Problems(BaseModel):
    error: str
    problems: list[str]


class Conflict(BaseModel):
    error: str
    status: str
    job_error: str | None


class ModelRef(BaseModel):
    name: str
    version: str
    sha256: str


class InputRef(BaseModel):
    filename: str | None
    sha256: str
    format: str
    delimiter: str | None


class Explanation(BaseModel):
    base: float
    contributions: dict[str, float]


class Result(BaseModel):
    row: int
    case_id: str | None
    diagnosis: Literal["M", "B"] | None
    probability_malignant: float | None
    model_name: str
    model_version: str
    model_sha256: str
    supplied_diagnosis: str | None
    confirmed_diagnosis: Literal["M", "B"] | None = Field(description="recorded after scoring (histology, say)")
    confirmed_basis: Literal["histology", "cytology", "follow-up"] | None
    out_of_range: str | None
    warning: str | None
    error: str | None
    explanation: Explanation | None


class ResultWithInput(Result):
    input: dict[str, str]


class RowRef(BaseModel):
    job_id: str | None = Field(description="null once that job has been deleted")
    row: int


class Job(BaseModel):
    id: str
    kind: str
    status: Literal["queued", "running", "succeeded", "failed", "needs_review", "cancelled"]
    rows_total: int
    rows_scored: int
    rows_rejected: int
    rows_out_of_range: int
    review: str | None = Field(description="why the job was held for review (status needs_review)")
    reviewed_at: str | None
    reviewed_by: str | None
    cancelled_by: str | None = Field(description="who cancelled the job (status cancelled); finished_at says when")
    purged_at: str | None = Field(description="when the job's file and results were removed")
    purged_by: str | None = Field(description="who removed them; null when the retention purge did")
    seconds_left: float | None = Field(description="while it runs: the time left at the rate so far")
    jobs_ahead: int | None = Field(
        description="while it is queued: the unfinished jobs on its queue sent before it, which workers take first"
    )
    model: ModelRef
    input: InputRef
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    attempts: int
    error: str | None
    source: RowRef | None = Field(description="a single case opened from a row of another job: that job and row")


class Waited(Job):
    """The job; once it has succeeded with at most 100 rows, its results and the notice too."""

    url: str | None = None
    results: list[Result] | None = None
    notice: str | None = None


class Accepted(BaseModel):
    """`{id, status, url}`; with `?wait=` and the job still unfinished, the job as GET shows it, plus `url`."""

    id: str
    status: str
    url: str


class Results(BaseModel):
    job: Job
    notice: str
    results: list[ResultWithInput]


class Problem(BaseModel):
    row: int
    case_id: str | None
    column: str
    value: str
    reason: str


class ErrorReport(BaseModel):
    problems: list[Problem]


class ModelCard(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    name: str
    version: str
    sha256: str
    engine: str
    features: list[str]
    metrics: dict[str, Any]
    calibration: dict[str, Any] | None
    best_params: dict[str, Any] | None
    sklearn_version: str
    feature_ranges: dict[str, list[float]]
    default: bool


class Models(BaseModel):
    models: list[ModelCard]
    notice: str


class Proportion(BaseModel):
    value: float | None = Field(description="numerator ÷ denominator; null when the denominator is 0")
    numerator: int
    denominator: int
    ci_low: float | None = Field(description="the 95 % Wilson interval's low end")
    ci_high: float | None


class AgainstDiagnosis(BaseModel):
    rows: int = Field(description="rows with a supplied or confirmed diagnosis that were not the model's training rows")
    training_rows: int = Field(description="rows with a diagnosis that were training rows: left out")
    confirmed_rows: int = Field(
        description="of `rows`, those whose diagnosis was confirmed after scoring (it stands in for a supplied one)"
    )
    confusion: dict[str, int] = Field(description="tp, fp, fn, tn, malignant (M) positive")
    sensitivity: Proportion
    specificity: Proportion


class MonthOfUse(BaseModel):
    month: str = Field(description="YYYY-MM, in the site's time zone (CYTOSCORE_TIME_ZONE)")
    version: str = Field(description="the model version that answered")
    jobs: int = Field(description="jobs that succeeded in the month and whose results are still stored")
    rows_scored: int
    rows_rejected: int
    rows_out_of_range: int = Field(description="scored rows with a value outside the training range (flagged)")
    answered_m: int = Field(description="scored rows answered M")
    against_diagnosis: AgainstDiagnosis


class ModelUse(BaseModel):
    """How a model has been used here, month by month (administrators)."""

    model_config = ConfigDict(protected_namespaces=())

    model: str
    time_zone: str
    months: list[MonthOfUse] = Field(description="newest first; the last 12 months, months without a job left out")


class ListedJob(Job):
    case_id: str | None = Field(None, description="a single case's id")
    owner: str | None = Field(None, description="the owner's email (shown to admins)")


class JobList(BaseModel):
    jobs: list[ListedJob]
    next: str | None = Field(description="the next page's URL; null on the last page")


class Rescore(BaseModel):
    """Another model for the same stored input; without one, the best its columns fit."""

    model: str | None = None


class ConfirmDiagnosis(BaseModel):
    """The diagnosis a scored row turned out to have, and what confirmed it."""

    diagnosis: Literal["M", "B"]
    basis: Literal["histology", "cytology", "follow-up"] = Field(
        description="histology (tissue), cytology (a repeat aspirate) or follow-up (clinical and imaging)"
    )


class RowDiagnosis(BaseModel):
    row: int | None = Field(None, description="the row's number in the job (or give its case_id)")
    case_id: str | None = Field(None, description="the row's case id, which must be on one row of the job only")
    diagnosis: Literal["M", "B"]


class ConfirmDiagnoses(BaseModel):
    """Several rows' confirmed diagnoses, all confirmed the same way; recorded all together or not at all."""

    basis: Literal["histology", "cytology", "follow-up"]
    diagnoses: list[RowDiagnosis] = Field(max_length=10_000)


class CopyDiagnoses(BaseModel):
    """Another job on the same file, whose confirmed diagnoses are brought to this one's same rows."""

    source: str = Field(description="the other job's id")


class Recorded(BaseModel):
    recorded: int = Field(description="how many rows' confirmed diagnoses were recorded (or corrected)")


class ConfirmedDiagnosis(ConfirmDiagnosis):
    job: str
    row: int
    answered: Literal["M", "B"] = Field(description="the model's answer for the row, as stored")
    agrees: bool
    trained_on: bool | None = Field(
        description="whether the row's values were one of the model's training rows (null: unknown, the model has "
        "changed since); such rows are counted apart in the model's figures of use"
    )
    recorded_by: str
    recorded_at: str


class Validation(BaseModel):
    """Against the known diagnoses, confirmed or supplied (M positive); `validation` is null while no row has one."""

    model_config = ConfigDict(protected_namespaces=())

    job: str
    model: str
    validation: dict[str, Any] | None


class Comparison(BaseModel):
    compared: int
    differing: int
    against_known: dict[str, Any] | None
    rows: list[dict[str, Any]]


class WebhookNew(BaseModel):
    url: str = Field(description="https, or http to a host an admin allowed")


class WebhookChange(BaseModel):
    active: bool


class Webhook(BaseModel):
    id: int
    url: str
    active: bool
    created_at: str | None
    deliveries: str


class WebhookCreated(Webhook):
    secret: str = Field(description="signs each delivery; shown in this answer only")


class Webhooks(BaseModel):
    webhooks: list[Webhook]


class Delivery(BaseModel):
    id: int
    job_id: str
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: str | None
    next_attempt_at: str | None
    delivered_at: str | None


class Deliveries(BaseModel):
    webhook: Webhook
    deliveries: list[Delivery]
