"""The one settings object of the service and the worker.

Every value comes from the environment (prefix ``PPRUNING_``) or a ``.env`` file, and is
read here only; the rest of the code receives it from :func:`get_settings`. The defaults
describe the embedded single-machine mode: SQLite for job state, kombu's SQLAlchemy
transport over a second SQLite file as the broker, artifacts under a local folder. A
production deployment sets the PostgreSQL, Redis and S3 URLs instead.
"""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PPRUNING_", env_file=".env", extra="ignore")

    data_dir: Path = Field(
        default=Path(".ppruning"),
        description="Folder of the embedded mode: SQLite database, broker file and artifacts.",
    )
    database_url: str = Field(default="", description="SQLAlchemy URL; default: SQLite under data_dir.")
    broker_url: str = Field(default="", description="Celery broker URL; default: SQLite broker under data_dir.")
    artifact_root: str = Field(default="", description="Artifact store root URI (file:// or s3://).")

    api_keys: list[str] = Field(
        default_factory=list,
        description="Bootstrap keys as 'owner:secret' pairs, accepted besides keys stored in the database.",
    )
    device: str = Field(default="auto", description="'auto', 'cpu', 'cuda' or 'cuda:N' for the worker.")
    allowed_model_roots: list[Path] = Field(
        default_factory=list,
        description="Local folders a job may name as its model or data; nothing outside them is read.",
    )
    max_body_bytes: int = Field(default=1_000_000, description="Largest accepted request body.")
    job_soft_time_limit_s: int = Field(default=6 * 3600)
    job_hard_time_limit_s: int = Field(default=6 * 3600 + 300)
    heartbeat_interval_s: float = Field(default=10.0)
    heartbeat_timeout_s: float = Field(default=120.0, description="A running job silent this long is stale.")
    queued_timeout_s: float = Field(default=600.0, description="A queued job untouched this long is re-sent.")
    upload_retry_s: float = Field(
        default=1800.0,
        ge=0,
        description="How long a worker whose job's computation finished keeps its results and retries a failing "
        "artifact store before the job fails.",
    )
    progress_min_interval_s: float = Field(default=1.0, description="Throttle for progress writes.")
    callback_secret: str = Field(default="", description="HMAC-SHA256 key for job callbacks.")
    callback_allow_private: bool = Field(
        default=False,
        description="Let callback URLs reach loopback, private and link-local addresses (a private deployment, "
        "tests). Off: such URLs are refused at submission and not called by the worker.",
    )
    base_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Where clients reach the API: the job URLs in responses, Location headers and callbacks "
        "are built from it, never from the request's Host header.",
    )
    metrics_token: str = Field(
        default="",
        description="When set, GET /metrics needs 'Authorization: Bearer <metrics_token>'; empty: /metrics is open "
        "(bind the API to a private network or set this: it shows job counts of every owner).",
    )
    dashboard_secret: str = Field(
        default="",
        description="Key that signs the dashboard's session cookies (/ui); empty: a random key per API process, "
        "so sessions end when it restarts. Set one key for every API process behind one address.",
    )
    dashboard_session_s: int = Field(
        default=8 * 3600, ge=60, description="How long a dashboard sign-in lasts before the API key is asked again."
    )

    mlflow_tracking_uri: str = Field(
        default="",
        description="MLflow tracking server the workers log jobs to (http://host:5000); its registry gets each "
        "job's final model as a model version. Empty: no tracking. Needs the mlflow extra on the workers.",
    )
    mlflow_experiment: str = Field(default="ppruning", description="MLflow experiment of jobs that name none.")
    mlflow_track_all: bool = Field(
        default=True,
        description="With a tracking URI, log every job that does not say \"tracking\": {\"mlflow\": false}; "
        "off: only the jobs that ask for it.",
    )

    # Limits an operator sets per deployment (0 = no limit).
    max_queued_jobs_per_owner: int = Field(
        default=100,
        ge=0,
        description="POST /jobs answers 429 when it would give an owner more queued jobs than this "
        "(a sweep counts as itself and one job per target).",
    )
    max_running_jobs_per_owner: int = Field(
        default=10,
        ge=0,
        description="At most this many of an owner's jobs run at once; workers leave the rest queued until one "
        "ends (a cap on running, not a check at submission).",
    )
    limit_retry_after_s: int = Field(default=60, ge=1, description="Retry-After of a 429 past the job limits.")
    unavailable_retry_after_s: int = Field(
        default=5,
        ge=1,
        description="Retry-After of a 503 while the database or the broker is unavailable (a restart, a full pool).",
    )
    max_event_streams: int = Field(
        default=1000, ge=0, description="Open event streams (SSE) one API process serves at once; past it, 429."
    )
    max_event_streams_per_owner: int = Field(
        default=100, ge=0, description="Open event streams of one owner per API process; past it, 429."
    )
    event_poll_s: float = Field(
        default=0.5, gt=0, description="How often the API reads new job events for its open streams (one read for all)."
    )
    artifact_retention_days: float = Field(
        default=0.0,
        ge=0,
        description="Artifacts of jobs finished longer ago are deleted (the job row stays); 0 keeps them forever.",
    )

    removal_retry_s: float = Field(
        default=30.0,
        gt=0,
        description="A store removal that failed (files of a deleted or cancelled job) is retried by the workers' "
        "reaper after this many seconds, the wait doubling with each failure up to an hour, until the files are gone.",
    )

    @field_validator("artifact_root")
    @classmethod
    def _artifact_root_is_a_uri(cls, value: str) -> str:
        if value and not value.startswith(("file://", "s3://")):
            example = Path(value).expanduser().resolve().as_uri()
            raise ValueError(f"must be a file:// or s3:// URI, not {value!r} (for this folder: {example})")
        return value

    @model_validator(mode="after")
    def _fill_embedded_defaults(self) -> Settings:
        """Empty URLs mean the embedded mode: everything under ``data_dir``.

        Folders are made absolute here, once: a worker runs each attempt in an empty working
        directory (:mod:`worker.inputs`), where a relative path would mean something else.
        """
        root = self.data_dir.expanduser().resolve()
        self.data_dir = root
        self.allowed_model_roots = [Path(r).expanduser().resolve() for r in self.allowed_model_roots]
        if not self.database_url:
            self.database_url = f"sqlite:///{root / 'ppruning.db'}"
        if not self.broker_url:
            self.broker_url = f"sqla+sqlite:///{root / 'broker.db'}"
        if not self.artifact_root:
            self.artifact_root = (root / "artifacts").as_uri()
        return self

    @property
    def embedded(self) -> bool:
        """True when job state lives in SQLite (the single-machine default)."""
        return self.database_url.startswith("sqlite")


class SettingsError(ValueError):
    """A setting has an invalid value; the message is one line naming the variable."""


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        name = "PPRUNING_" + "_".join(str(part) for part in error["loc"]).upper() if error["loc"] else "settings"
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"{name}: {message}")
    return "invalid setting " + "; ".join(problems)


@lru_cache
def get_settings() -> Settings:
    """The process settings, read once; :class:`SettingsError` when one is invalid."""
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None


def settings_or_exit() -> Settings:
    """For commands that start a service: an invalid setting stops them with one line, exit 2."""
    try:
        return get_settings()
    except SettingsError as exc:
        print(f"ppruning: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
