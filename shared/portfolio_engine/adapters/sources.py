"""Build market-data sources from settings (API keys from settings or Secrets Manager).

Network sources are built once per process and kept, so a warm Lambda keeps its rate limiter,
circuit breaker and in-process cache between invocations.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from functools import lru_cache

import boto3
import pandas as pd
from botocore.exceptions import BotoCoreError, ClientError

from portfolio_engine.adapters.lake import filesystem_for
from portfolio_engine.adapters.market_data import (
    DEFAULT_UNIVERSE,
    AlphaVantageSource,
    BundledSource,
    NasdaqDataLinkSource,
    ResiliencePolicy,
    UserFileSource,
    cache_from_url,
    load_ff3_monthly,
    load_ff_industries_monthly,
    load_sectors,
    load_spy_total_return,
    load_treasury_curve,
    load_vix,
)
from portfolio_engine.exceptions import AuthenticationError, ConfigurationError
from portfolio_engine.ports import MarketDataSource, ResponseCache
from portfolio_engine.settings import Settings

logger = logging.getLogger(__name__)
_NETWORK_SOURCES: dict[tuple[str, str], MarketDataSource] = {}


def default_universe(settings: Settings, source: MarketDataSource) -> Sequence[str]:
    """The symbols of a run that names none: every symbol of a user file, else ``SPE_UNIVERSE`` or the bundled 20."""
    if isinstance(source, UserFileSource):
        return source.symbols
    return settings.universe or DEFAULT_UNIVERSE


def reference_tables() -> dict[str, Callable[[], pd.DataFrame]]:
    """Loaders of the bundled reference tables that ingest stores in the lake once."""
    return {
        "ff3_monthly": load_ff3_monthly,
        "ff_industries_monthly": load_ff_industries_monthly,
        "treasury_curve": load_treasury_curve,
        "vix": load_vix,
        "spy_total_return": load_spy_total_return,
        "sectors": lambda: pd.DataFrame(sorted(load_sectors().items()), columns=["symbol", "sector"]),
    }


_POLICY_SETTINGS = {  # Settings field -> ResiliencePolicy field
    "source_rate_per_minute": "requests_per_minute",
    "source_max_attempts": "max_attempts",
    "source_timeout_seconds": "timeout_seconds",
    "cache_ttl_seconds": "cache_ttl_seconds",
    "open_range_ttl_seconds": "open_range_ttl_seconds",
}


def resilience_policy(settings: Settings, default: ResiliencePolicy) -> ResiliencePolicy:
    """A source's own ``DEFAULT_POLICY`` with the fields the settings configure (None: keep the default)."""
    return default.merged({field: getattr(settings, name) for name, field in _POLICY_SETTINGS.items()})


@lru_cache(maxsize=4)
def _cache(redis_url: str | None) -> ResponseCache:
    return cache_from_url(redis_url)


def build_source(name: str, settings: Settings, *, file_uri: str | None = None) -> MarketDataSource:
    """The market-data source called ``name``.

    Raises
    ------
    ConfigurationError
        For an unknown source name, or ``file`` without ``file_uri``.
    AuthenticationError
        If a keyed source has neither a key nor a readable secret.
    """
    if name == "bundled":
        return BundledSource()
    if name == "file":
        if not file_uri:
            raise ConfigurationError("Source 'file' needs a file URI.", hint="Pass --file PATH (CSV or Parquet).")
        if file_uri.startswith("s3://"):
            fs, path = filesystem_for(file_uri, endpoint_url=settings.aws_endpoint_url, region=settings.aws_region)
            return UserFileSource(path, filesystem=fs)
        return UserFileSource(file_uri)
    key = (name, settings.model_dump_json())
    if key not in _NETWORK_SOURCES:
        cache = _cache(settings.redis_url)
        if name == "yahoo":
            from portfolio_engine.adapters.market_data.yahoo import YahooSource

            _NETWORK_SOURCES[key] = YahooSource(
                policy=resilience_policy(settings, YahooSource.DEFAULT_POLICY),
                cache=cache,
                cache_dir=settings.data_dir / "yfinance",  # on Lambda under /tmp: the home folder is read-only
            )
        elif name == "alpha_vantage":
            _NETWORK_SOURCES[key] = AlphaVantageSource(
                resolve_api_key(settings, "alpha_vantage"),
                adjusted=settings.alpha_vantage_adjusted,
                policy=resilience_policy(settings, AlphaVantageSource.DEFAULT_POLICY),
                cache=cache,
            )
        elif name == "nasdaq_data_link":
            _NETWORK_SOURCES[key] = NasdaqDataLinkSource(
                resolve_api_key(settings, "nasdaq_data_link"),
                policy=resilience_policy(settings, NasdaqDataLinkSource.DEFAULT_POLICY),
                cache=cache,
            )
        else:
            raise ConfigurationError(
                f"Unknown market-data source {name!r}.",
                hint="Use bundled, yahoo, alpha_vantage, nasdaq_data_link or file.",
            )
    return _NETWORK_SOURCES[key]


def resolve_api_key(settings: Settings, source: str) -> str:
    """The API key of ``source``: from settings, else from the Secrets Manager secret they name.

    A secret may hold the bare key or JSON with an ``api_key`` field.

    Raises
    ------
    AuthenticationError
        If neither is configured, or the secret cannot be read.
    """
    direct = getattr(settings, f"{source}_api_key")
    if direct is not None and direct.get_secret_value():
        return str(direct.get_secret_value())
    secret_id = getattr(settings, f"{source}_secret_id")
    variable = f"SPE_{source.upper()}_API_KEY"
    if not secret_id:
        raise AuthenticationError(
            f"No API key for {source}.",
            hint=f"Set {variable}, or SPE_{source.upper()}_SECRET_ID to a Secrets Manager secret holding it.",
        )
    client = boto3.client("secretsmanager", endpoint_url=settings.aws_endpoint_url, region_name=settings.aws_region)
    try:
        secret = client.get_secret_value(SecretId=secret_id)["SecretString"]
    except (ClientError, BotoCoreError, KeyError) as exc:
        raise AuthenticationError(
            f"Cannot read the {source} key from secret {secret_id!r}: {exc}",
            hint="Check the secret exists, holds a string, and this role may call secretsmanager:GetSecretValue.",
        ) from exc
    try:
        document = json.loads(secret)
    except json.JSONDecodeError:
        return secret.strip()
    if isinstance(document, dict) and document.get("api_key"):
        return str(document["api_key"])
    raise AuthenticationError(
        f"Secret {secret_id!r} is JSON without an 'api_key' field.", hint='Store the bare key or {"api_key": "..."}.'
    )
