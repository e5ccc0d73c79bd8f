"""Settings: the only module that reads the environment (and `.env`).

Names follow the seed documents where they exist. Every platform's API root is configurable so
opsbot can run against the local stand-ins; defaults are production.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PLATFORMS = ("notion", "trello", "slack", "drive", "sheets")

# Seed "Action Orchestration Architecture", rate limit table: (requests, window seconds).
DEFAULT_RATE_LIMITS: dict[str, tuple[int, float]] = {
    "notion": (3, 1.0),
    "trello": (100, 10.0),
    "slack": (1, 1.0),
    "drive": (1000, 100.0),
    "sheets": (100, 100.0),
    "echo": (1_000_000, 1.0),
}


class Settings(BaseSettings):
    """Everything opsbot can be told from outside. Secrets are SecretStr: never printed."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    # Store and queue
    opsbot_database_url: str = "sqlite:///./var/opsbot.db"
    queue_workers: int = Field(5, ge=1, le=256)
    queue_max_size: int = Field(1000, ge=1)
    opsbot_lease_seconds: float = Field(30.0, gt=0)
    opsbot_stuck_after: float = Field(600.0, gt=0, description="seconds running before 'stuck'")
    opsbot_drain_timeout: float = Field(10.0, ge=0, description="clean stop: wait for running")
    opsbot_dlq_ttl_days: float = Field(7.0, gt=0)
    opsbot_poll_interval: float = Field(0.05, gt=0, description="cross-process pick-up, seconds")

    # Flow control
    max_retry_attempts: int = Field(3, ge=0)
    retry_initial_delay: float = Field(1.0, ge=0, description="seconds")
    retry_backoff_multiplier: float = Field(2.0, ge=1)
    retry_max_delay: float = Field(30.0, ge=0)
    circuit_breaker_threshold: int = Field(5, ge=1)
    circuit_breaker_timeout: float = Field(30.0, gt=0, description="seconds OPEN before probing")
    circuit_breaker_half_open_successes: int = Field(3, ge=1)
    notion_rate_limit: float | None = None  # requests per second (seed: 3)
    trello_rate_limit: float | None = None  # requests per 10 s (seed: 100)
    slack_rate_limit: float | None = None  # requests per second (seed: 1)
    drive_rate_limit: float | None = None  # requests per 100 s (seed: 1000)
    sheets_rate_limit: float | None = None  # requests per 100 s (seed: 100)
    opsbot_fallbacks: str = "notion.create_task=trello.create_card"

    # Slack
    slack_bot_token: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    slack_approval_channel: str = "#approvals"
    slack_error_channel: str = "#errors"
    slack_notification_channel: str = "#operations"
    ops_approvers: str = ""
    ops_admins: str = ""
    opsbot_approval_timeout: float = Field(3600.0, gt=0)
    # bot/approval_rules.py: which rules send an action to #approvals without being asked.
    opsbot_approval_rules: str = "deletion,permission,bulk,money,external"
    opsbot_bulk_threshold: int = Field(10, ge=1)
    opsbot_internal_domains: str = ""  # e-mail domains that are not "external"
    opsbot_external_channels: str = ""  # Slack channels shared with other organisations

    # Notion
    notion_api_key: SecretStr | None = None
    notion_database_id: str | None = None
    notion_api_url: str = "https://api.notion.com"

    # Trello
    trello_api_key: SecretStr | None = None
    trello_token: SecretStr | None = None
    trello_board_id: str | None = None
    trello_default_list_id: str | None = None
    trello_api_url: str = "https://api.trello.com"

    # Google
    google_service_account_key: str | None = None
    drive_folder_id: str | None = None
    drive_share_with: str | None = None
    google_drive_api_url: str = "https://www.googleapis.com"
    sheets_spreadsheet_id: str | None = None
    sheets_log_sheet: str = "Actions"
    google_sheets_api_url: str = "https://sheets.googleapis.com"

    # Surface
    opsbot_http_port: int = Field(3000, ge=0, le=65535)
    opsbot_api_token: SecretStr | None = None
    opsbot_workflows: str | None = None
    opsbot_env: str = "dev"
    log_level: str = "INFO"
    opsbot_max_body_bytes: int = Field(1_048_576, ge=1024, description="HTTP request body limit")
    opsbot_hook_secret: SecretStr | None = None  # verifies POST /hooks/{name} signatures
    opsbot_hooks: str = ""  # inbound hook -> workflow: name=workflow[,...]
    opsbot_callback_secret: SecretStr | None = None  # signs POSTs to an action's callback_url
    opsbot_health_interval: float = Field(300.0, gt=0, description="platform checks, s")

    # Operator alerting (seed "WorkflowOrchestrator" names)
    alert_channels: str = "slack,webhook,email,log"
    alert_failure_threshold: int = Field(3, ge=1, description="consecutive failures per op")
    alert_webhook_url: str | None = None
    alert_webhook_secret: SecretStr | None = None
    alert_email_recipients: str = ""
    alert_email_from: str = "opsbot@localhost"
    smtp_host: str | None = None
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = True

    # Scheduler and maintenance (bot/scheduler.py, bot/maintenance.py)
    opsbot_schedules: str | None = None  # YAML/JSON file; default ./schedules.yml if present
    # Missed firings while down, for schedules that do not set catch_up: once | all | skip
    opsbot_schedule_catch_up: Literal["once", "all", "skip"] = "once"
    opsbot_audit_retention_days: float = Field(90.0, gt=0)
    opsbot_history_retention_days: float = Field(30.0, gt=0, description="finished actions")
    opsbot_prune_cron: str = "0 3 * * *"  # daily retention job (UTC); "" disables
    opsbot_report_cron: str = "0 8 * * *"  # daily maintenance report (UTC)
    opsbot_report_channel: str = ""  # Slack channel for the daily report; "" = not posted

    @cached_property
    def rate_limits(self) -> dict[str, tuple[int, float]]:
        """(requests, window seconds) per platform, the env overriding the seed's numbers."""
        limits = dict(DEFAULT_RATE_LIMITS)
        overrides = {
            "notion": self.notion_rate_limit,
            "trello": self.trello_rate_limit,
            "slack": self.slack_rate_limit,
            "drive": self.drive_rate_limit,
            "sheets": self.sheets_rate_limit,
        }
        for platform, value in overrides.items():
            if value is not None:
                window = DEFAULT_RATE_LIMITS[platform][1]
                limits[platform] = (max(1, int(value)), window)
        return limits

    @cached_property
    def fallbacks(self) -> dict[tuple[str, str], tuple[str, str]]:
        """Parse `OPSBOT_FALLBACKS`: `platform.type=platform.type[,...]`."""
        chains: dict[tuple[str, str], tuple[str, str]] = {}
        for item in filter(None, (part.strip() for part in self.opsbot_fallbacks.split(","))):
            primary, _, fallback = item.partition("=")
            p_platform, _, p_type = primary.strip().partition(".")
            f_platform, _, f_type = fallback.strip().partition(".")
            if not all((p_platform, p_type, f_platform, f_type)):
                raise ValueError(
                    f"OPSBOT_FALLBACKS: {item!r} is not of the form platform.type=platform.type"
                )
            chains[(p_platform, p_type)] = (f_platform, f_type)
        return chains

    @property
    def database_path(self) -> Path | None:
        """The SQLite file, when the URL names one (used for backups and disk use)."""
        prefix = "sqlite:///"
        if self.opsbot_database_url.startswith(prefix):
            return Path(self.opsbot_database_url[len(prefix) :])
        return None

    @property
    def approvers(self) -> frozenset[str]:
        return _id_set(self.ops_approvers)

    @property
    def admins(self) -> frozenset[str]:
        return _id_set(self.ops_admins)


def _id_set(raw: str) -> frozenset[str]:
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


def load_settings(**overrides: object) -> Settings:
    """Read the environment (and `.env`); keyword overrides win (tests, CLI flags)."""
    return Settings(**overrides)  # type: ignore[arg-type]
