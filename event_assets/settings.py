"""Typed settings, read once from the environment.

Every knob of the project is here, named exactly as its environment variable, so
the README table, Terraform and the code cannot drift apart. Local and cloud
differ only in values (`LAKE_URI=./path` vs `gs://...`), never in code paths.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from event_assets.storage.retention import retention_problem

PositiveInt = Annotated[int, Field(gt=0)]
RECENT_PARTITION_DAYS = 7  # the days before today that have a partition by default


class SettingsError(ValueError):
    """A setting from the environment is invalid; the message is one line naming it."""


class Settings(BaseSettings):
    """Environment-driven configuration (see the README's configuration table)."""

    model_config = SettingsConfigDict(
        case_sensitive=True, extra="ignore", frozen=True, env_ignore_empty=True
    )

    LAKE_URI: str = Field(
        default="./.data/lake",
        description="Root of the lake: a local path or gs://bucket/prefix.",
    )
    GCP_PROJECT_ID: str = Field(default="local-project", min_length=1)
    PUBSUB_TOPIC: str = Field(default="events", min_length=1)
    PUBSUB_SUBSCRIPTION: str = Field(default="events-ingest", min_length=1)
    PUBSUB_EMULATOR_HOST: str | None = Field(
        default=None, description="host:port of a Pub/Sub emulator; unset in production."
    )
    MAX_MESSAGE_BYTES: PositiveInt = Field(
        default=1_048_576,
        description="Payloads larger than this are quarantined (raw bytes kept).",
    )
    PULL_MAX_MESSAGES: PositiveInt = Field(
        default=50_000, description="Most messages one pull round (sensor tick) takes."
    )
    PULL_MAX_BYTES: PositiveInt = Field(
        default=67_108_864,
        description=(
            "Most pulled bytes one pull round holds in memory (64 MiB); only the Pull RPCs "
            "in flight can overshoot it. A round peaks at about 4x its payload bytes in RSS "
            "for ASCII text and 8x for non-ASCII (BENCHMARKS.md, round_memory): 64 MiB "
            "keeps a round near 0.6 GiB, within a 2 GiB daemon with its code server."
        ),
    )
    PULL_BATCH_SIZE: Annotated[int, Field(gt=0, le=1000)] = Field(
        default=1000, description="max_messages of one Pull RPC (Pub/Sub caps it at 1000)."
    )
    DECODE_WORKERS: Annotated[int, Field(ge=0, le=64)] = Field(
        default=0,
        description=(
            "Processes that decode pulled messages in parallel (kept for the life of "
            "the process); 0 decodes in the pulling process. Worth the core count in "
            "long-lived processes (the code server, `ingest` without --once)."
        ),
    )
    PULL_TIMEOUT_SECONDS: Annotated[float, Field(gt=0)] = Field(
        default=10.0, description="Time budget of one pull round."
    )
    ACK_DEADLINE_SECONDS: Annotated[int, Field(ge=10, le=600)] = Field(
        default=120,
        description=(
            "Subscription ack deadline; must exceed two pull rounds plus a landing "
            "(`ingest` pulls the next round while the previous one lands)."
        ),
    )
    PARTITIONS_START_DATE: date = Field(
        default_factory=lambda: datetime.now(UTC).date() - timedelta(days=RECENT_PARTITION_DAYS),
        description=(
            "First daily partition; older events are quarantined. A deployment sets it once, "
            "to the first day its data can hold, and never moves it; unset (`make dev`, a "
            "trial), it is the last RECENT_PARTITION_DAYS days, so the UI shows only days "
            "that can hold data."
        ),
    )
    DEDUP_WINDOW_DAYS: Annotated[int, Field(ge=0, le=7)] = Field(
        default=1,
        description=(
            "An event whose id is already in one of this many days before its own is a "
            "duplicate, not a new row (a plain-JSON event re-published after midnight is "
            "dated by its publish time); each day costs one more id scan per merge."
        ),
    )
    SENSOR_TICK_BUDGET_SECONDS: Annotated[float, Field(gt=0)] = Field(
        default=40.0,
        description=(
            "A sensor tick pulls rounds back to back until the subscription is empty or "
            "this much time is spent; must stay well under Dagster's sensor timeout "
            "(DAGSTER_SENSOR_GRPC_TIMEOUT_SECONDS, 60 s): raise both together."
        ),
    )
    RUN_RETRY_BASE_SECONDS: PositiveInt = Field(
        default=30,
        description=(
            "After a day's merge run fails, the sensor requests the next one this long "
            "after the failure, doubling per consecutive failure (capped at 1 h)."
        ),
    )
    PENDING_STUCK_MINUTES: PositiveInt = Field(
        default=30,
        description=(
            "A landed batch still unmerged after this long fails the scheduled "
            "recent_days_audit (younger ones are reported as in flight)."
        ),
    )
    FUTURE_SKEW_SECONDS: Annotated[int, Field(ge=0, le=86_400)] = Field(
        default=300,
        description=(
            "How far past the decoder's clock an event time may be and still be accepted "
            "(older-than-PARTITIONS_START_DATE and later-than-this are quarantined as "
            "event_date_out_of_range). Producers' clocks run a little ahead of ours, and an "
            "event stamped just after midnight may be decoded just before it: without an "
            "allowance both would be quarantined. The clock is read as each message is "
            "decoded, not when its round starts. At most a day, so an accepted event is "
            "dated at most tomorrow (UTC)."
        ),
    )
    EVENT_TIME_FIELD: str | None = Field(
        default=None,
        min_length=1,
        description=(
            "Top-level payload field whose RFC 3339 string is a plain-JSON event's time (and so "
            "its event_date); absent, not a string or not RFC 3339 -> the publish time (the "
            "event is kept either way). Unset: plain JSON is dated by publish time. "
            "Identity is unchanged (the hash of the payload); CloudEvents keep using `time`."
        ),
    )
    WRITE_MAX_ATTEMPTS: PositiveInt = Field(
        default=12, description="Attempts of a Delta commit that conflicts with another writer."
    )
    STORAGE_MAX_RETRIES: Annotated[int, Field(ge=0)] = Field(
        default=10,
        description="Retries of one GCS request that failed with 5xx, 429 or a timeout.",
    )
    STORAGE_RETRY_TIMEOUT_SECONDS: Annotated[float, Field(gt=0)] = Field(
        default=20.0,
        description=(
            "No GCS request is retried once this long has passed since its first attempt "
            "(object_store's default is 3 minutes): a failing store fails the round or the "
            "run well inside a sensor tick's budget, and the work is retried by the next."
        ),
    )
    STORAGE_REQUEST_TIMEOUT_SECONDS: Annotated[float, Field(gt=0)] = Field(
        default=30.0, description="Longest one GCS request attempt may take."
    )
    STORAGE_CAN_DELETE: bool = Field(
        default=True,
        description=(
            "False for a storage identity without storage.objects.delete (production's "
            "daemon): its Delta commits then write no checkpoint and expire no log (both "
            "overwrite or delete objects; GCS authorizes an overwrite as a delete), leaving "
            "them to the runs' commits and maintenance."
        ),
    )
    COMPACTION_LOOKBACK_HOURS: PositiveInt = Field(
        default=2, description="Scheduled compaction covers partitions written this recently."
    )
    VACUUM_RETENTION_HOURS: PositiveInt = Field(
        default=168, description="Vacuum keeps files needed for time travel this far back."
    )
    VACUUM_ALLOW_BELOW_DEFAULT: bool = Field(
        default=False, description="Permit VACUUM_RETENTION_HOURS below Delta's safe 168 h."
    )
    FRESHNESS_MAX_LAG_MINUTES: PositiveInt = Field(
        default=60, description="The freshness check fails when nothing landed for this long."
    )
    CONTRACT_REFRESH_MINUTES: Annotated[int, Field(ge=1, le=60)] = Field(
        default=1,
        description=(
            "A contract day is refreshed at most once per this many minutes (on the minute: "
            "a cron of `*/N`), at the first tick after its `events` day changed. A contract "
            "run re-validates its whole day: raise it where days are large and merges must "
            "keep the CPU."
        ),
    )
    CONTRACT_TYPE_ATTRIBUTE: str = Field(
        default="event_type",
        min_length=1,
        description=(
            "Pub/Sub attribute naming the event type of a plain-JSON message, for contracts "
            "(CloudEvents use their `type`)."
        ),
    )
    LOGFIRE_SECRET_NAME: str | None = Field(
        default=None,
        description=(
            "Secret Manager secret holding the Logfire token (name in GCP_PROJECT_ID, or a full "
            "projects/.../versions/... path); read once at start-up."
        ),
    )
    LOGFIRE_TOKEN: SecretStr | None = Field(
        default=None, description="Logfire token when no LOGFIRE_SECRET_NAME; unset = local only."
    )
    GOOGLE_SERVICE_ACCOUNT: str | None = Field(
        default=None,
        description=(
            "Path to a service-account key file for gs:// (else Application Default "
            "Credentials). Read by delta-rs and obstore alike."
        ),
    )

    @field_validator("LAKE_URI")
    @classmethod
    def _lake_uri_scheme(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be empty")
        if "://" not in value:
            return value.rstrip("/") or "/"
        scheme, _, rest = value.partition("://")
        if scheme == "file":
            return str(Path(rest).resolve())
        if scheme != "gs" or not rest.strip("/") or rest.startswith("/"):
            raise ValueError(f"must be a local path or gs://bucket[/prefix], got {value!r}")
        return value.rstrip("/")

    @field_validator("PUBSUB_EMULATOR_HOST")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"must be host:port, got {value!r}")
        return value

    @model_validator(mode="after")
    def _vacuum_retention_is_safe(self) -> Settings:
        problem = retention_problem(self.VACUUM_RETENTION_HOURS, self.VACUUM_ALLOW_BELOW_DEFAULT)
        if problem:
            raise ValueError(
                f"VACUUM_RETENTION_HOURS: {problem}; set VACUUM_ALLOW_BELOW_DEFAULT=true to "
                "allow it"
            )
        return self

    # Plain properties, not cached: `model_copy(update=...)` copies the instance dict, so a
    # cached path would survive a change of the name it is built from.
    @property
    def topic_path(self) -> str:
        return f"projects/{self.GCP_PROJECT_ID}/topics/{self.PUBSUB_TOPIC}"

    @property
    def subscription_path(self) -> str:
        return f"projects/{self.GCP_PROJECT_ID}/subscriptions/{self.PUBSUB_SUBSCRIPTION}"


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment, turning a validation error into one clear line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(part) for part in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        prefix = f"invalid setting {name}: " if name else "invalid settings: "
        raise SettingsError(prefix + message) from None
