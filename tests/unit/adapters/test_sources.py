"""Source wiring from settings: API keys from Secrets Manager (moto's server over HTTP), sources, limits."""

from __future__ import annotations

import boto3
import pytest

from portfolio_engine.adapters.market_data import AlphaVantageSource, BundledSource, NasdaqDataLinkSource
from portfolio_engine.adapters.sources import build_source, resolve_api_key
from portfolio_engine.exceptions import AuthenticationError, ConfigurationError
from portfolio_engine.settings import Settings


def _secret(endpoint: str, name: str, value: str) -> None:
    boto3.client("secretsmanager", endpoint_url=endpoint, region_name="us-east-1").create_secret(
        Name=name, SecretString=value
    )


def test_a_key_in_settings_wins_over_the_secret(aws_env: str) -> None:
    settings = Settings(alpha_vantage_api_key="direct", alpha_vantage_secret_id="unused")
    assert resolve_api_key(settings, "alpha_vantage") == "direct"


@pytest.mark.parametrize(("stored", "expected"), [("plainkey\n", "plainkey"), ('{"api_key": "jsonkey"}', "jsonkey")])
def test_a_key_is_read_from_secrets_manager_bare_or_as_json(aws_env: str, stored: str, expected: str) -> None:
    name = f"spe/ndl/{expected}"
    _secret(aws_env, name, stored)
    settings = Settings(nasdaq_data_link_secret_id=name)
    assert resolve_api_key(settings, "nasdaq_data_link") == expected
    assert isinstance(build_source("nasdaq_data_link", settings), NasdaqDataLinkSource)


def test_a_missing_secret_is_an_authentication_error_with_a_hint(aws_env: str) -> None:
    with pytest.raises(AuthenticationError, match="no-such-secret") as info:
        resolve_api_key(Settings(alpha_vantage_secret_id="no-such-secret"), "alpha_vantage")
    assert "GetSecretValue" in info.value.hint


def test_json_without_api_key_is_refused(aws_env: str) -> None:
    _secret(aws_env, "spe/av/bad", '{"key": "x"}')
    with pytest.raises(AuthenticationError, match="api_key"):
        resolve_api_key(Settings(alpha_vantage_secret_id="spe/av/bad"), "alpha_vantage")


def test_no_key_at_all_names_both_ways_to_configure_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPE_ALPHA_VANTAGE_API_KEY", raising=False)
    with pytest.raises(AuthenticationError) as info:
        resolve_api_key(Settings(), "alpha_vantage")
    assert "SPE_ALPHA_VANTAGE_API_KEY" in info.value.hint and "SECRET_ID" in info.value.hint


def test_sources_are_built_by_name_and_network_sources_are_kept() -> None:
    settings = Settings(alpha_vantage_api_key="k")
    assert isinstance(build_source("bundled", settings), BundledSource)
    first = build_source("alpha_vantage", settings)
    assert isinstance(first, AlphaVantageSource) and build_source("alpha_vantage", settings) is first
    with pytest.raises(ConfigurationError, match="Unknown market-data source"):
        build_source("bloomberg", settings)
    with pytest.raises(ConfigurationError, match="file URI"):
        build_source("file", settings)


def test_each_source_keeps_its_own_limits_unless_configured() -> None:
    from portfolio_engine.adapters.sources import resilience_policy

    default = Settings()
    assert resilience_policy(default, AlphaVantageSource.DEFAULT_POLICY).requests_per_minute == 5
    assert resilience_policy(default, NasdaqDataLinkSource.DEFAULT_POLICY).requests_per_minute == 120
    tuned = Settings(source_timeout_seconds=20, source_rate_per_minute=2)
    policy = resilience_policy(tuned, AlphaVantageSource.DEFAULT_POLICY)
    assert (policy.timeout_seconds, policy.requests_per_minute) == (20, 2)


def test_alpha_vantage_defaults_to_the_free_unadjusted_series() -> None:
    source = build_source("alpha_vantage", Settings(alpha_vantage_api_key="k2"))
    assert isinstance(source, AlphaVantageSource) and source.function == "TIME_SERIES_DAILY"
