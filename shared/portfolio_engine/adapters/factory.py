"""Build the lake and the validation policy from settings: what every handler calls once at start-up.

Market-data sources are wired in ``portfolio_engine.adapters.sources``, which only the ingest
function imports: the other functions do not pay for the network clients on a cold start.
"""

from __future__ import annotations

from portfolio_engine.adapters.lake import ParquetLake
from portfolio_engine.data.validation import ValidationPolicy
from portfolio_engine.settings import Settings, ValidationMode


def build_lake(settings: Settings) -> ParquetLake:
    """The lake at ``settings.resolved_lake_uri()`` (a folder, or S3 through ``AWS_ENDPOINT_URL`` if set)."""
    return ParquetLake(settings.resolved_lake_uri(), endpoint_url=settings.aws_endpoint_url, region=settings.aws_region)


def validation_policy(settings: Settings, mode: ValidationMode | None = None) -> ValidationPolicy:
    """The validation policy of a run: its own mode, or the configured one."""
    return ValidationPolicy(
        mode=mode or settings.validation_policy,
        max_ffill=settings.max_forward_fill,
        calendar=settings.validation_calendar,
    )
