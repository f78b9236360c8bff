"""Market-data sources (``MarketDataSource``) and response caches (``ResponseCache``).

Network sources (Yahoo Finance, Alpha Vantage, Nasdaq Data Link) run every request through
``ResilientCaller``: response cache, rate limiter, retries with backoff, circuit breaker.
Local sources (bundled real data, user files) read files and need none of it.

``YahooSource`` and ``YahooSession`` load on first use: yfinance costs half a second of import,
which a Lambda running the bundled or file sources should not pay on its cold start.
"""

from typing import Any

from portfolio_engine.adapters.cache import MemoryCache, RedisCache, cache_from_url
from portfolio_engine.adapters.market_data.alpha_vantage import AlphaVantageSource
from portfolio_engine.adapters.market_data.bundled import (
    DEFAULT_UNIVERSE,
    FACTOR_ETFS,
    INDEX_SYMBOL,
    BundledSource,
    load_ff3_monthly,
    load_ff_industries_monthly,
    load_index_bars,
    load_sectors,
    load_spy_total_return,
    load_treasury_curve,
    load_vix,
)
from portfolio_engine.adapters.market_data.nasdaq_data_link import NasdaqDataLinkSource
from portfolio_engine.adapters.market_data.resilience import ResiliencePolicy, ResilientCaller
from portfolio_engine.adapters.market_data.user_files import UserFileSource, read_user_bars

__all__ = [
    "DEFAULT_UNIVERSE",
    "FACTOR_ETFS",
    "INDEX_SYMBOL",
    "AlphaVantageSource",
    "BundledSource",
    "MemoryCache",
    "NasdaqDataLinkSource",
    "RedisCache",
    "ResiliencePolicy",
    "ResilientCaller",
    "UserFileSource",
    "YahooSession",
    "YahooSource",
    "cache_from_url",
    "load_ff3_monthly",
    "load_ff_industries_monthly",
    "load_index_bars",
    "load_sectors",
    "load_spy_total_return",
    "load_treasury_curve",
    "load_vix",
    "read_user_bars",
]


def __getattr__(name: str) -> Any:
    if name in ("YahooSource", "YahooSession"):
        from portfolio_engine.adapters.market_data import yahoo

        return getattr(yahoo, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
