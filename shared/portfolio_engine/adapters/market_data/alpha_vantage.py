"""Alpha Vantage daily bars over its HTTP API (``https://www.alphavantage.co/query``).

``TIME_SERIES_DAILY_ADJUSTED`` (``adjusted=True``: open, high, low, close, adjusted close, volume; a
premium endpoint since 2023) or ``TIME_SERIES_DAILY`` (``adjusted=False``, what a free key can use).

**Unadjusted bars** (``adjusted=False``): the series has no adjusted close, so ``adj_close`` is set to
``close`` on every bar. Returns computed from them are price returns (no dividends) with a jump on
each split, and validation sees a single-series source (``close == adj_close`` on every bar): a jump
by a split ratio is then a warning ("unadjusted split or real move"), not an error.

The API returns the whole series (``outputsize=full``) or the latest 100 bars (``compact``); dates are
filtered here, so the cache entry (one per symbol, function and output size) serves any range. Such an
entry includes today's bar once it exists, so it is always cached as open-ended: for
``ResiliencePolicy.open_range_ttl_seconds`` (default 60 s), not ``cache_ttl_seconds``.

Alpha Vantage reports errors inside HTTP 200 bodies, worded in English; the wording is the only
signal, so it is read here (and nowhere else):

==================================================  ==========================
body                                                engine error
==================================================  ==========================
``{"Error Message": "...apikey..."}``               ``AuthenticationError``
``{"Error Message": "Invalid API call..."}``        ``UnknownSymbolError``
``{"Note": ...}``, ``{"Information": "...rate limit..."}``  ``RateLimitedError`` (retried)
``{"Information": "...premium endpoint..."}``       ``AuthenticationError`` (entitlement; not retried)
no ``Time Series (Daily)``                          ``MalformedResponseError``
==================================================  ==========================
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from functools import partial
from typing import Any, ClassVar, Literal

import pandas as pd
import requests

from portfolio_engine.adapters.market_data._common import check_range, fetch_each, normalize_symbols, within
from portfolio_engine.adapters.market_data._http import decode_json, http_get
from portfolio_engine.adapters.market_data.resilience import ResiliencePolicy, ResilientCaller
from portfolio_engine.data.schema import conform_bars
from portfolio_engine.exceptions import (
    AuthenticationError,
    ConfigurationError,
    DataSourceError,
    EmptyDataError,
    MalformedResponseError,
    RateLimitedError,
    SchemaError,
    UnknownSymbolError,
)
from portfolio_engine.ports import ResponseCache

logger = logging.getLogger(__name__)

BASE_URL = "https://www.alphavantage.co/query"
SERIES_KEY = "Time Series (Daily)"
#: Alpha Vantage's free tier allows a handful of requests per minute.
DEFAULT_POLICY = ResiliencePolicy(requests_per_minute=5)
#: Hint of the error raised when a key without a premium plan asks for the adjusted series.
PREMIUM_ADJUSTED_HINT = (
    "TIME_SERIES_DAILY_ADJUSTED is a premium endpoint: use adjusted=False (SPE_ALPHA_VANTAGE_ADJUSTED=false) "
    "with a free key."
)
#: ``outputsize=compact`` holds the latest 100 trading days, about 140 calendar days.
_COMPACT_CALENDAR_DAYS = 140
_FIELDS = {
    "open": "open",
    "high": "high",
    "low": "low",
    "close": "close",
    "adjusted close": "adj_close",
    "volume": "volume",
}

OutputSize = Literal["auto", "compact", "full"]


class AlphaVantageSource:
    """Daily bars from Alpha Vantage.

    Parameters
    ----------
    api_key : str or None
        The Alpha Vantage key (``Settings.alpha_vantage_api_key``). None or blank fails at ``fetch``.
    adjusted : bool, default True
        ``TIME_SERIES_DAILY_ADJUSTED`` (premium) when True; ``TIME_SERIES_DAILY`` when False, with
        ``adj_close`` equal to ``close`` on every bar (see the module docstring). A free key needs False.
    outputsize : {"auto", "compact", "full"}, default "auto"
        ``auto`` asks for ``compact`` when ``start`` is within the last ~100 trading days, else ``full``.
    policy : ResiliencePolicy, optional
        Rate limit, retries, breaker, timeout, cache TTLs; defaults to ``DEFAULT_POLICY`` (5 requests
        per minute). To change a few fields only: ``DEFAULT_POLICY.merged({...})``.
    cache : ResponseCache, optional
        Response cache shared with other sources; None disables caching. Entries are whole series,
        kept for ``policy.open_range_ttl_seconds``.
    session : requests.Session, optional
        HTTP session (a new one by default).
    base_url : str, default ``BASE_URL``
        Endpoint, overridable for a proxy.
    today : callable returning date, default ``date.today``
        Clock for ``outputsize="auto"``.

    Examples
    --------
    >>> source = AlphaVantageSource(api_key="...", adjusted=False)  # doctest: +SKIP
    >>> source.fetch(["IBM"], start=date(2024, 1, 2), end=date(2024, 1, 31))  # doctest: +SKIP
    """

    name = "alpha_vantage"
    #: The source's own limits: the free tier allows 5 requests a minute (and 25 a day).
    DEFAULT_POLICY: ClassVar[ResiliencePolicy] = DEFAULT_POLICY

    def __init__(
        self,
        api_key: str | None,
        *,
        adjusted: bool = True,
        outputsize: OutputSize = "auto",
        policy: ResiliencePolicy | None = None,
        cache: ResponseCache | None = None,
        session: requests.Session | None = None,
        base_url: str = BASE_URL,
        today: Callable[[], date] = date.today,
    ) -> None:
        if outputsize not in ("auto", "compact", "full"):
            raise ConfigurationError(
                f"outputsize must be 'auto', 'compact' or 'full'; got {outputsize!r}.", hint="Use 'auto'."
            )
        self._api_key = (api_key or "").strip() or None
        self.adjusted = adjusted
        self.outputsize = outputsize
        self.policy = policy or DEFAULT_POLICY
        self.base_url = base_url
        self._session = session or requests.Session()
        self._today = today
        self._caller = ResilientCaller(self.name, self.policy, cache)

    @property
    def function(self) -> str:
        """The Alpha Vantage ``function`` parameter this source calls."""
        return "TIME_SERIES_DAILY_ADJUSTED" if self.adjusted else "TIME_SERIES_DAILY"

    def __repr__(self) -> str:
        """Describe the source without its key."""
        return f"AlphaVantageSource(function={self.function!r}, outputsize={self.outputsize!r})"

    def fetch(
        self,
        symbols: Sequence[str],
        start: date | None = None,
        end: date | None = None,
        interval: str = "1d",
    ) -> pd.DataFrame:
        """Return daily bars for ``symbols`` from ``start`` through ``end`` (inclusive).

        Returns
        -------
        DataFrame
            Canonical bars, one row per (symbol, trading day).

        Raises
        ------
        AuthenticationError
            No key configured, the key is rejected, or the request needs a premium plan (with a free
            key, ``adjusted=True`` does: ``PREMIUM_ADJUSTED_HINT``).
        UnknownSymbolError
            Alpha Vantage does not know a symbol.
        EmptyDataError
            No symbol has a bar in the range.
        RateLimitedError, SourceUnavailableError, CircuitOpenError, MalformedResponseError
            See ``resilience.ResilientCaller.call``.
        ConfigurationError
            ``interval`` is not ``"1d"``, or ``start`` is after ``end``.
        """
        if interval != "1d":
            raise ConfigurationError(
                f"Source 'alpha_vantage' serves daily bars only; got interval {interval!r}.",
                hint="Use interval='1d', or the 'yahoo' source for intraday and weekly bars.",
            )
        names = normalize_symbols(symbols, source=self.name)
        first, last = check_range(start, end)
        if self._api_key is None:
            raise AuthenticationError(
                "No Alpha Vantage API key is configured.",
                hint="Set SPE_ALPHA_VANTAGE_API_KEY (free key: https://www.alphavantage.co/support/#api-key) "
                "or SPE_ALPHA_VANTAGE_SECRET_ID for AWS Secrets Manager.",
            )
        outputsize = self._outputsize_for(first)
        return fetch_each(
            names,
            lambda symbol: within(
                self._caller.call(
                    {"function": self.function, "symbol": symbol, "outputsize": outputsize},
                    partial(self._fetch_series, symbol, outputsize),
                    open_ended=True,  # a whole series gains today's bar, whatever range was asked for
                ),
                first,
                last,
            ),
            source=self.name,
            start=first,
            end=last,
        )

    def _outputsize_for(self, start: date | None) -> str:
        if self.outputsize != "auto":
            return self.outputsize
        recent = start is not None and start >= self._today() - timedelta(days=_COMPACT_CALENDAR_DAYS)
        return "compact" if recent else "full"

    def _fetch_series(self, symbol: str, outputsize: str) -> pd.DataFrame:
        params = {
            "function": self.function,
            "symbol": symbol,
            "outputsize": outputsize,
            "datatype": "json",
            "apikey": self._api_key or "",
        }
        response = http_get(
            self._session,
            self.base_url,
            params=params,
            timeout=self.policy.timeout_seconds,
            source=self.name,
            secret=self._api_key,
        )
        if response.status_code in (401, 403):
            raise AuthenticationError(f"Alpha Vantage refused the request with HTTP {response.status_code}.")
        if response.status_code >= 400:
            raise DataSourceError(
                f"Alpha Vantage answered HTTP {response.status_code} {response.reason} for {symbol!r}.",
                hint="Check the symbol and the base URL; retry later if it persists.",
            )
        payload = decode_json(response, source=self.name)
        return parse_daily_series(payload, symbol, function=self.function)


def _raise_for_notice(payload: dict[str, Any], symbol: str, function: str | None) -> None:
    """Raise the engine error that an Alpha Vantage ``Error Message``/``Note``/``Information`` body means."""
    if "Error Message" in payload:
        message = str(payload["Error Message"])
        if "apikey" in message.lower() or "api key" in message.lower():
            raise AuthenticationError(f"Alpha Vantage rejected the API key: {message}")
        raise UnknownSymbolError(
            f"Alpha Vantage does not know symbol {symbol!r}: {message}",
            hint="Use Alpha Vantage's symbol convention (e.g. 'IBM', 'TSCO.LON'); try SYMBOL_SEARCH to find it.",
        )
    if "Note" in payload:
        raise RateLimitedError(f"Alpha Vantage rate limit: {payload['Note']}")
    if "Information" in payload:
        message = str(payload["Information"])
        lowered = message.lower()
        if "rate limit" in lowered or "call frequency" in lowered or "requests per" in lowered:
            raise RateLimitedError(f"Alpha Vantage rate limit: {message}")
        if "premium" in lowered:
            if function == "TIME_SERIES_DAILY_ADJUSTED":
                raise AuthenticationError(
                    f"Alpha Vantage refused TIME_SERIES_DAILY_ADJUSTED for {symbol!r}: {message}",
                    hint=PREMIUM_ADJUSTED_HINT,
                )
            raise AuthenticationError(
                f"Alpha Vantage needs a premium plan for this {function or 'time series'} request: {message}",
                hint="With a free key, ask for a start within the last ~100 trading days (outputsize='compact'), "
                "or use a premium key.",
            )
        if "apikey" in lowered or "api key" in lowered:
            raise AuthenticationError(f"Alpha Vantage rejected the API key: {message}")
        raise RateLimitedError(f"Alpha Vantage declined the request: {message}")


def parse_daily_series(payload: Any, symbol: str, *, function: str | None = None) -> pd.DataFrame:
    """Turn an Alpha Vantage daily time-series body into canonical bars.

    Parameters
    ----------
    payload : object
        The decoded JSON body.
    symbol : str
        The requested symbol (written to the ``symbol`` column).
    function : str, optional
        The ``function`` requested, so a premium notice can name the fix.

    Returns
    -------
    DataFrame
        Canonical bars sorted by date. Without an adjusted close in the body (``TIME_SERIES_DAILY``),
        ``adj_close`` is ``close``.

    Raises
    ------
    AuthenticationError, UnknownSymbolError, RateLimitedError
        For the notices listed in the module docstring.
    EmptyDataError
        If the series is present but empty.
    MalformedResponseError
        If the body has no series or a bar lacks a numeric close.
    """
    if not isinstance(payload, dict):
        raise MalformedResponseError(f"Alpha Vantage body for {symbol!r} is a {type(payload).__name__}, not an object.")
    _raise_for_notice(payload, symbol, function)
    series = payload.get(SERIES_KEY)
    if not isinstance(series, dict):
        raise MalformedResponseError(
            f"Alpha Vantage body for {symbol!r} has no {SERIES_KEY!r} object; keys: {sorted(payload)}.",
            hint="The API may have changed; check https://www.alphavantage.co/documentation/.",
        )
    if not series:
        raise EmptyDataError(f"Alpha Vantage returned an empty series for {symbol!r}.")
    rows = []
    for day, fields in series.items():
        if not isinstance(fields, dict):
            raise MalformedResponseError(f"Alpha Vantage bar {day} of {symbol!r} is not an object: {fields!r}.")
        # Keys look like "1. open", "5. adjusted close": drop the ordinal, keep the name.
        named = {key.split(". ", 1)[-1].strip().lower(): value for key, value in fields.items()}
        if "close" not in named:
            raise MalformedResponseError(f"Alpha Vantage bar {day} of {symbol!r} has no close: {sorted(fields)}.")
        rows.append({"date": day, **{column: named[name] for name, column in _FIELDS.items() if name in named}})
    frame = pd.DataFrame(rows)
    frame["symbol"] = symbol
    if "adj_close" not in frame.columns:
        # TIME_SERIES_DAILY: one series only; validation recognises it by close == adj_close.
        frame["adj_close"] = frame["close"]
    try:
        return conform_bars(frame)
    except (SchemaError, ValueError, TypeError) as exc:  # non-numeric fields or bad dates: the payload is at fault
        raise MalformedResponseError(f"Alpha Vantage series for {symbol!r} is not usable: {exc}") from exc
