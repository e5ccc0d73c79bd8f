"""SQLModel tables: the durable state of opsbot.

Times are float Unix seconds (portable between SQLite and PostgreSQL, cheap to compare).
JSON payloads are stored as text. Hot paths (claim, complete, audit) use SQLAlchemy Core
statements over these tables, in batches; the ORM classes are for definition and light reads.
"""

from __future__ import annotations

from sqlalchemy import Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

SCHEMA_VERSION = 4

# The claim walks this index in run order (priority, then FIFO) and filters on due time inside
# it; created by create_all on new files and by migration step 2 on version-1 files. It also
# serves every lookup by status (it starts with status), so status has no index of its own
# (dropped by step 3: one index less to write on every insert and status change).
CLAIM_INDEX_COLUMNS = ("status", "priority_rank", "seq", "available_at")
# Only workflow steps have a run_id: a partial index keeps the other actions out of it, so a
# plain submit writes no page of it (lookups are `run_id = ...`, which the index serves).
RUN_ID_INDEX_WHERE = "run_id IS NOT NULL"


class ActionRow(SQLModel, table=True):
    __tablename__ = "actions"
    __table_args__ = (
        Index("ix_actions_claim", *CLAIM_INDEX_COLUMNS),
        Index(
            "ix_actions_run_id",
            "run_id",
            sqlite_where=text(RUN_ID_INDEX_WHERE),
            postgresql_where=text(RUN_ID_INDEX_WHERE),
        ),
    )

    seq: int | None = Field(default=None, primary_key=True)  # FIFO order within a priority
    id: str = Field(unique=True, index=True)
    type: str
    platform: str
    priority: str
    priority_rank: int
    status: str
    data: str = "{}"
    result: str | None = None
    error: str | None = None
    error_kind: str | None = None
    idempotency_key: str | None = Field(default=None, unique=True)
    requires_approval: bool = False
    approval_reason: str | None = None
    requested_by: str | None = None
    source: str | None = None
    reason: str | None = None
    notify: bool = False
    callback_url: str | None = None
    attempts: int = 0
    max_attempts: int = 4  # 1 try + MAX_RETRY_ATTEMPTS retries
    created_at: float
    queued_at: float | None = None
    available_at: float = 0.0  # not_before, or the next retry time
    started_at: float | None = None
    finished_at: float | None = None
    lease_owner: str | None = None
    lease_expires_at: float | None = None
    worker: str | None = None
    served_by: str | None = None  # platform that executed it (differs when a fallback served)
    fallback_used: bool = False
    queue_wait_ms: float | None = None
    run_ms: float | None = None
    run_id: str | None = None  # workflow run, when a step
    step_name: str | None = None


class AttemptRow(SQLModel, table=True):
    __tablename__ = "attempts"

    id: int | None = Field(default=None, primary_key=True)
    action_id: str = Field(index=True)
    number: int
    platform: str
    worker: str | None = None
    started_at: float
    finished_at: float | None = None
    outcome: str  # succeeded | failed
    error_kind: str | None = None
    error: str | None = None
    status_code: int | None = None
    retry_after: float | None = None


class AuditRow(SQLModel, table=True):
    __tablename__ = "audit"

    id: int | None = Field(default=None, primary_key=True)
    at: float = Field(index=True)
    entity: str = "action"  # action | run | circuit | queue | approval | ops
    entity_id: str | None = Field(default=None, index=True)
    from_status: str | None = None
    to_status: str | None = None
    actor: str = "system"
    detail: str | None = None


class CircuitRow(SQLModel, table=True):
    __tablename__ = "circuits"

    platform: str = Field(primary_key=True)
    state: str = "closed"  # closed | open | half_open
    consecutive_failures: int = 0
    half_open_successes: int = 0
    opened_at: float | None = None
    updated_at: float = 0.0
    last_error: str | None = None


class PauseRow(SQLModel, table=True):
    __tablename__ = "pauses"

    platform: str = Field(primary_key=True)  # "*" pauses everything
    paused_at: float
    actor: str = "system"
    reason: str | None = None


class MetaRow(SQLModel, table=True):
    __tablename__ = "meta"

    key: str = Field(primary_key=True)
    value: str


class AlertRow(SQLModel, table=True):
    """Operator alerts: one row per condition occurrence, updated while it lasts."""

    __tablename__ = "alerts"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(index=True)  # the condition, e.g. "circuit:notion"
    status: str = Field(default="active", index=True)  # active | resolved
    severity: str = "high"
    title: str
    text: str = ""
    count: int = 1  # times the condition was reported while active
    opened_at: float
    updated_at: float
    resolved_at: float | None = None
    refs: str = "{}"  # JSON: sink name -> message reference (Slack ts), for in-place updates
    detail: str | None = None


# --- workflows (bot/workflows/): definition versions, runs, promotions. A run's steps are the
# actions rows carrying its run_id and step_name (the action row is the step journal).


class WorkflowVersionRow(SQLModel, table=True):
    __tablename__ = "workflow_versions"
    __table_args__ = (UniqueConstraint("name", "hash"), UniqueConstraint("name", "version"))

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True)
    version: int  # 1, 2, ... per name, in order of first sight
    hash: str  # sha256 of the canonical definition
    definition: str  # canonical JSON, what runs of this version execute
    created_at: float


class WorkflowRunRow(SQLModel, table=True):
    __tablename__ = "workflow_runs"

    id: str = Field(primary_key=True)
    name: str = Field(index=True)
    version: int
    env: str = "dev"
    status: str
    transactional: bool = False
    input: str = "{}"
    error: str | None = None
    idempotency_key: str | None = Field(default=None, unique=True)
    requested_by: str | None = None
    source: str | None = None
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    deadline_at: float | None = None
    updated_at: float = 0.0
    skipped: str = "{}"  # step -> why it never became an action (template error, cancelled run)
    rollback: str | None = None  # JSON: rolled_back, not_rolled_back, irreversible, errors
    rollback_generation: int = 0  # bumped by retry-rollback / forced rollback
    comment: str | None = None  # operator's note when resolving
    callback_url: str | None = None  # told the outcome when the run finishes (bot.run_callbacks)


class WorkflowPromotionRow(SQLModel, table=True):
    __tablename__ = "workflow_promotions"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True)
    version: int
    hash: str
    from_env: str | None = None
    to_env: str
    forced: bool = False
    actor: str = "system"
    at: float
    comment: str | None = None


# --- scheduler (bot/scheduler.py): per-schedule state shared by every process, and firings.


class ScheduleStateRow(SQLModel, table=True):
    __tablename__ = "schedule_state"

    name: str = Field(primary_key=True)
    paused: bool = False
    paused_by: str | None = None
    first_seen_at: float  # catch-up counts missed firings from here when none was recorded
    last_fire_at: float | None = None  # the latest cron fire time handled (any outcome)
    updated_at: float = 0.0


class ScheduleFiringRow(SQLModel, table=True):
    """One firing (cron, catch-up or manual); the last 100 per schedule are kept."""

    __tablename__ = "schedule_firings"
    __table_args__ = (UniqueConstraint("schedule", "fire_at", "kind"),)

    id: int | None = Field(default=None, primary_key=True)
    schedule: str = Field(index=True)
    fire_at: float  # the scheduled fire time (manual: when asked)
    kind: str = "cron"  # cron | catch_up | manual
    outcome: str  # enqueued | duplicate | skipped | failed | done
    target_kind: str  # workflow | action | job
    target_id: str | None = None  # run id or action id
    detail: str | None = None
    recorded_at: float


# --- health (bot/health.py): the latest platform check, written by every process that checks.


class PlatformCheckRow(SQLModel, table=True):
    """The latest check of each platform, from the periodic health checks of any process or
    from `opsbot check`, so `opsbot status`, `/ops status` and `opsbot report` can show it."""

    __tablename__ = "platform_checks"

    platform: str = Field(primary_key=True)
    checked_at: float
    ok: bool
    detail: str = ""
    latency_ms: float | None = None
    source: str = "health"  # health (periodic, a running opsbot) | check (`opsbot check`)


# --- outcome callbacks (bot/callbacks.py): one row per told final status of an action or run.


class CallbackDeliveryRow(SQLModel, table=True):
    """A callback claimed (`delivering`, under a lease so a crashed owner's claim is taken over),
    then `delivered` or `gave_up`. The key is the final status told: a run resolved after
    rollback_failed, or a dead letter retried to success, is told again."""

    __tablename__ = "callback_deliveries"
    __table_args__ = (
        UniqueConstraint("kind", "subject_id", "status", "finished_at"),
        Index("ix_callback_deliveries_lease", "state", "lease_expires_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str  # action | run
    subject_id: str
    status: str  # the final status told
    finished_at: float  # of that status (0.0 when the row had none)
    state: str  # delivering | delivered | gave_up
    owner: str | None = None  # the process delivering it
    lease_expires_at: float | None = None
    attempts: int = 0
    last_result: str | None = None  # HTTP status or error class of the latest attempt
    claimed_at: float = Field(index=True)
    done_at: float | None = None
