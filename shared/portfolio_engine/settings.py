"""Settings: the only place that reads the environment.

Every entry point builds one ``Settings`` at start-up and passes what it needs down. Variables use
the ``SPE_`` prefix (``SPE_LAKE_URI``), except the conventional ``REDIS_URL`` and ``AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ValidationMode = Literal["reject", "forward_fill", "quarantine"]


class Settings(BaseSettings):
    """Engine configuration, read once from the environment (and a ``.env`` file if present)."""

    model_config = SettingsConfigDict(env_prefix="SPE_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default=Path(".spe"), description="Local data directory (lake, run records).")
    lake_uri: str | None = Field(
        default=None, description="Lake root: a local folder or s3://bucket/prefix. Default: <data_dir>/lake."
    )
    aws_endpoint_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("SPE_AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL"),
        description="Endpoint for every AWS API (moto server, LocalStack); None means AWS itself.",
    )
    states_endpoint_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("SPE_STATES_ENDPOINT_URL", "AWS_ENDPOINT_URL_SFN"),
        description="Step Functions endpoint for reading execution histories; 'local' inside the local runner.",
    )
    code_version: str | None = Field(
        default=None, description="The deployed code's version (a git commit); default: a hash of the package."
    )
    aws_region: str = Field(
        default="us-east-1", validation_alias=AliasChoices("SPE_AWS_REGION", "AWS_REGION", "AWS_DEFAULT_REGION")
    )
    redis_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("SPE_REDIS_URL", "REDIS_URL"),
        description="Redis for the response cache; in-process cache when unset.",
    )

    store_uri: str | None = Field(
        default=None,
        description="Store of record: sqlite:///path (default <data_dir>/store.db) or dynamodb://table.",
    )

    universe: list[str] | None = Field(default=None, description="Symbols of the default run; None: bundled 20.")
    index_symbol: str = "^GSPC"
    validation_policy: ValidationMode = "forward_fill"
    max_forward_fill: int = Field(default=5, ge=0)
    validation_calendar: str | None = Field(
        default="XNYS", description="Exchange calendar bars are checked against; 'none' for the symbols' own dates."
    )

    alpha_vantage_api_key: SecretStr | None = None
    alpha_vantage_secret_id: str | None = Field(default=None, description="Secrets Manager id holding the key.")
    nasdaq_data_link_api_key: SecretStr | None = None
    nasdaq_data_link_secret_id: str | None = None
    alpha_vantage_adjusted: bool = Field(
        default=False, description="TIME_SERIES_DAILY_ADJUSTED is a premium endpoint; free keys need False."
    )
    # Network-source tuning: None keeps each source's own default (Alpha Vantage allows 5 requests a minute).
    source_rate_per_minute: int | None = Field(default=None, ge=1)
    source_max_attempts: int | None = Field(default=None, ge=1)
    source_timeout_seconds: float | None = Field(default=None, gt=0)
    cache_ttl_seconds: int | None = Field(default=None, ge=0)
    open_range_ttl_seconds: int | None = Field(default=None, ge=0)

    # Alerts: every alert goes to the local log (<data_dir>/alerts/alerts.jsonl), and to SNS when set; Slack is
    # an SNS subscriber (functions/notify_slack) that reads the webhook named here.
    alerts_topic_arn: str | None = Field(default=None, description="SNS topic that risk alerts are published to.")
    slack_webhook_secret_id: str | None = Field(
        default=None, description="Secrets Manager id holding the Slack incoming-webhook URL (bare or JSON 'url')."
    )
    slack_webhook_ssm_parameter: str | None = Field(
        default=None, description="SSM Parameter Store name (SecureString) holding the Slack webhook URL."
    )
    alert_cooldown_seconds: int = Field(
        default=3600, ge=0, description="An alert is not re-sent within this time unless its severity escalates."
    )
    idempotency_table: str | None = Field(
        default=None,
        description="DynamoDB table of powertools idempotency records (event-triggered functions: notify_slack); "
        "unset: those functions act on every delivery.",
    )

    # The HTTP API: bearer tokens verified against a JWKS (a file or an https URL), API keys in the store.
    api_jwks: str | None = Field(
        default=None,
        description="JWKS of the token issuer: a file path or URL. "
        "Default: <data_dir>/api/jwks.json (`spe api` makes it).",
    )
    api_issuer: str = Field(default="spe-local", description="The tokens' required `iss`.")
    api_audience: str = Field(default="spe-api", description="The tokens' required `aud`.")
    api_role_claims: list[str] = Field(
        default_factory=lambda: ["roles", "cognito:groups"], description="Claims holding the caller's roles."
    )
    api_max_body_bytes: int = Field(default=256 * 1024, ge=1024, description="Largest request body accepted.")
    api_rate_per_minute: int = Field(default=600, ge=1, description="Requests per minute per caller (token or key).")
    api_what_if_max_assets: int = Field(
        default=200, ge=1, description="Largest universe POST /what-if optimizes synchronously (else 413)."
    )
    api_what_if_max_history_days: int = Field(
        default=2520, ge=2, description="Longest history (trading days) POST /what-if optimizes on (else 413)."
    )
    state_machine_arns: dict[str, str] = Field(
        default_factory=dict, description="On AWS: machine name -> ARN, for the runs the API starts (JSON)."
    )

    @field_validator("validation_calendar", mode="before")
    @classmethod
    def _no_calendar(cls, value: object) -> object:
        return None if isinstance(value, str) and value.strip().lower() in ("", "none", "null") else value

    def resolved_store_uri(self) -> str:
        """The store of record, defaulting to the SQLite file ``<data_dir>/store.db`` (absolute)."""
        return self.store_uri or f"sqlite:///{(self.data_dir / 'store.db').resolve()}"

    def resolved_api_jwks(self) -> str:
        """Where the API's token keys are: the setting, or the development issuer's under the data directory."""
        return self.api_jwks or str((self.data_dir / "api" / "jwks.json").resolve())

    def resolved_lake_uri(self) -> str:
        """The lake root, defaulting to ``<data_dir>/lake`` as an absolute path."""
        return self.lake_uri or str((self.data_dir / "lake").resolve())
