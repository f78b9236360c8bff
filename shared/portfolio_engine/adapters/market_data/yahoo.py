"""Yahoo Finance bars through ``yfinance`` (1.x).

How yfinance 1.x fetches (read from its source, ``yfinance/data.py`` and ``scrapers/history.py``):

* All requests go through one process-wide ``YfData`` singleton holding a ``curl_cffi`` session that
  impersonates Chrome. ``yf.Ticker(symbol, session=...)`` swaps the singleton's session (a
  ``curl_cffi`` or ``requests`` session; caching sessions are refused).
* Before a request it gets a cookie (``https://fc.yahoo.com``) and a crumb
  (``https://query1.finance.yahoo.com/v1/test/getcrumb``), falling back to the consent flow on
  ``guce.yahoo.com``. Failures there are tolerated: the chart API works without a crumb.
* ``Ticker.history(start=...)`` first needs the exchange time zone: a ``/v8/finance/chart/{symbol}``
  call with ``range=1d`` (kept in an on-disk cache), falling back twice per process to
  ``/v10/finance/quoteSummary``. Then one ``/v8/finance/chart/{symbol}`` call with ``period1``/``period2``.
* Errors are *logged and swallowed* unless ``yf.config.debug.hide_exceptions`` is False. With it False:
  unknown ticker -> ``YFTzMissingError`` (or the quoteSummary's HTTP 404); no bars or a chart
  ``error`` object -> ``YFPricesMissingError``; HTTP 429 twice -> ``YFRateLimitError``; Yahoo's
  maintenance page -> ``YFDataException``; unexpected JSON -> ``KeyError``/``JSONDecodeError``.
* An HTTP 5xx answer is not an exception in yfinance: it is read as "no price data". And responses
  for past date ranges are kept in an in-process LRU cache, so a retry would get the same answer.

What this adapter does about it:

* sets ``yf.config.debug.hide_exceptions = False`` (process-wide: the engine is yfinance's only user)
  so failures surface as exceptions, mapped to the engine's errors below;
* hands yfinance a ``YahooSession``: a ``curl_cffi`` session that raises ``HTTPError`` for a chart API
  answer of 429 or 5xx, so the status code and ``Retry-After`` reach the resilience wrapper (and a
  failed answer never lands in yfinance's LRU cache);
* asks for ``auto_adjust=False`` to get both ``Close`` and ``Adj Close``, ``actions=False``,
  ``repair=False``; ``end`` is inclusive here (yfinance's is exclusive);
* caches the answer for a range that is not settled (no end, or an end that reaches today or
  yesterday in UTC: ``_common.is_settled``; yfinance applies the same idea to its LRU cache) for
  ``ResiliencePolicy.open_range_ttl_seconds`` only: such an answer still gains bars, and serving it
  for an hour would hide them from a schedule that polls intraday bars every few minutes;
* with ``cache_dir``, points yfinance's on-disk caches (time zones, cookie, ISIN) there through
  ``yf.set_tz_cache_location``: its default, the user cache directory, is read-only on Lambda.

=========================================================  =========================
yfinance / HTTP                                            engine error
=========================================================  =========================
``YFRateLimitError``, HTTP 429                             ``RateLimitedError`` (retried)
timeout, connection error, HTTP 5xx, maintenance page      ``SourceUnavailableError`` (retried)
``YFTzMissingError``, other ``YFTickerMissingError``, 404  ``UnknownSymbolError``
``YFPricesMissingError`` (symbol known, no bars)           ``EmptyDataError``
HTTP 401/403                                               ``AuthenticationError``
unexpected JSON or shape                                   ``MalformedResponseError``
=========================================================  =========================
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from datetime import date, timedelta
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import yfinance as yf
from curl_cffi import requests as curl_requests
from yfinance import exceptions as yf_errors

from portfolio_engine.adapters.market_data._common import check_range, fetch_each, is_settled, normalize_symbols
from portfolio_engine.adapters.market_data.resilience import ResiliencePolicy, ResilientCaller
from portfolio_engine.data.schema import conform_bars
from portfolio_engine.exceptions import (
    AuthenticationError,
    ConfigurationError,
    DataError,
    EmptyDataError,
    MalformedResponseError,
    PortfolioEngineError,
    RateLimitedError,
    SourceUnavailableError,
    UnknownSymbolError,
)
from portfolio_engine.ports import ResponseCache

logger = logging.getLogger(__name__)

CHART_PATH = "/v8/finance/chart/"
INTERVALS = frozenset({"1m", "2m", "5m", "15m", "30m", "60m", "90m", "1h", "1d", "5d", "1wk", "1mo", "3mo"})
DEFAULT_POLICY = ResiliencePolicy(requests_per_minute=60)
_COLUMNS = {
    "Open": "open",
    "High": "high",
    "Low": "low",
    "Close": "close",
    "Adj Close": "adj_close",
    "Volume": "volume",
}


class YahooSession(curl_requests.Session):
    """``curl_cffi`` session (Chrome impersonation) that raises on chart API answers 429 and 5xx.

    yfinance reads a 5xx body as "no data" and caches past-range answers; raising here keeps the
    status and headers (``Retry-After``) on ``HTTPError.response`` for the engine's retry logic.
    Other answers, including the 404 of an unknown symbol, pass through to yfinance unchanged.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("impersonate", "chrome")
        super().__init__(**kwargs)

    def request(self, *args: Any, **kwargs: Any) -> Any:
        """Send the request; raise ``curl_cffi`` ``HTTPError`` for a chart API 429 or 5xx answer."""
        response = super().request(*args, **kwargs)
        url = str(kwargs.get("url", args[1] if len(args) > 1 else ""))
        status = response.status_code
        if CHART_PATH in url and (status == 429 or status >= 500):
            raise curl_requests.exceptions.HTTPError(f"HTTP {status} from the Yahoo chart API", 0, response)
        return response


class YahooSource:
    """Bars from Yahoo Finance via yfinance.

    Parameters
    ----------
    policy : ResiliencePolicy, optional
        Rate limit, retries, breaker, timeout, cache TTLs; defaults to ``DEFAULT_POLICY`` (60 requests
        per minute). To change a few fields only: ``DEFAULT_POLICY.merged({...})``.
    cache : ResponseCache, optional
        Response cache: settled ranges for ``policy.cache_ttl_seconds``, others for
        ``policy.open_range_ttl_seconds`` (see ``_common.is_settled``); None disables caching.
    session : YahooSession, optional
        The session yfinance uses (a new ``YahooSession`` by default). Any other ``curl_cffi`` or
        ``requests`` session works, but without the 429/5xx mapping described above.
    cache_dir : str or Path, optional
        Folder for yfinance's on-disk caches (exchange time zones, cookie, ISINs), created if absent;
        on Lambda a folder under ``/tmp``. None leaves yfinance's default, the user cache directory.

    Raises
    ------
    ConfigurationError
        If ``cache_dir`` cannot be created or is not writable.

    Notes
    -----
    yfinance shares one session, cookie and cache folder across the process, so two ``YahooSource``
    objects share them too (each keeps its own rate limiter and breaker; the last ``cache_dir`` given
    wins). yfinance opens its cache files on first use: build the source before the first fetch.
    """

    name = "yahoo"
    #: The source's own limits: Yahoo publishes no rate limit; 60 a minute is a cautious pace.
    DEFAULT_POLICY: ClassVar[ResiliencePolicy] = DEFAULT_POLICY

    def __init__(
        self,
        *,
        policy: ResiliencePolicy | None = None,
        cache: ResponseCache | None = None,
        session: Any | None = None,
        cache_dir: str | Path | None = None,
    ) -> None:
        self.policy = policy or DEFAULT_POLICY
        self.cache_dir = None if cache_dir is None else use_cache_dir(cache_dir)
        self._session = session if session is not None else YahooSession()
        self._caller = ResilientCaller(self.name, self.policy, cache)
        # Without this yfinance logs failures and returns an empty frame, indistinguishable from "no bars".
        yf.config.debug.hide_exceptions = False

    def fetch(
        self,
        symbols: Sequence[str],
        start: date | None = None,
        end: date | None = None,
        interval: str = "1d",
    ) -> pd.DataFrame:
        """Return bars for Yahoo ``symbols`` (``"AAPL"``, ``"^GSPC"``, ``"BRK-B"``) from ``start`` through ``end``.

        Returns
        -------
        DataFrame
            Canonical bars. Daily and longer bars are stamped with the exchange's calendar date;
            intraday bars with their UTC time.

        Raises
        ------
        UnknownSymbolError
            Yahoo does not know a symbol.
        EmptyDataError
            No symbol has a bar in the range.
        RateLimitedError, SourceUnavailableError, CircuitOpenError, MalformedResponseError
            See ``resilience.ResilientCaller.call``.
        ConfigurationError
            Unsupported ``interval`` or ``start`` after ``end``.
        """
        if interval not in INTERVALS:
            raise ConfigurationError(
                f"Source 'yahoo' does not serve interval {interval!r}.", hint=f"Use one of {sorted(INTERVALS)}."
            )
        names = normalize_symbols(symbols, source=self.name)
        first, last = check_range(start, end)
        open_ended = not is_settled(last)
        return fetch_each(
            names,
            lambda symbol: self._caller.call(
                {"symbol": symbol, "start": first, "end": last, "interval": interval},
                partial(self._fetch_one, symbol, first, last, interval),
                open_ended=open_ended,
            ),
            source=self.name,
            start=first,
            end=last,
        )

    def _fetch_one(self, symbol: str, start: date | None, end: date | None, interval: str) -> pd.DataFrame:
        kwargs: dict[str, Any] = {
            "interval": interval,
            "auto_adjust": False,
            "actions": False,
            "repair": False,
            "timeout": self.policy.timeout_seconds,
        }
        if start is None:
            kwargs["period"] = "max"
        else:
            kwargs["start"] = start.isoformat()
        if end is not None:
            kwargs["end"] = (end + timedelta(days=1)).isoformat()  # yfinance's end is exclusive
        try:
            history = yf.Ticker(symbol, session=self._session).history(**kwargs)
        except DataError:
            raise
        except Exception as exc:  # every failure is translated; see the module's table
            raise translate_error(exc, symbol) from exc
        return history_to_bars(history, symbol, interval)


def use_cache_dir(cache_dir: str | Path) -> Path:
    """Create ``cache_dir`` if needed and make it the folder of yfinance's on-disk caches.

    ``yf.set_tz_cache_location`` is yfinance's documented call for this; in 1.x it moves the
    time-zone, cookie and ISIN caches together. It affects the whole process.

    Parameters
    ----------
    cache_dir : str or Path
        The folder; ``~`` is expanded.

    Returns
    -------
    Path
        The absolute folder.

    Raises
    ------
    ConfigurationError
        If the folder cannot be created or is not writable.
    """
    folder = Path(cache_dir).expanduser().resolve()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(
            f"Cannot create yfinance's cache folder {str(folder)!r}: {exc.strerror or exc}.",
            hint="Use a writable folder, e.g. under /tmp on Lambda (adapters.sources uses <data_dir>/yfinance).",
        ) from exc
    if not os.access(folder, os.R_OK | os.W_OK):
        raise ConfigurationError(
            f"yfinance's cache folder {str(folder)!r} is not readable and writable.",
            hint="Use a writable folder, e.g. under /tmp on Lambda (adapters.sources uses <data_dir>/yfinance).",
        )
    yf.set_tz_cache_location(str(folder))
    return folder


def _status_of(exc: BaseException) -> int | None:
    status = getattr(getattr(exc, "response", None), "status_code", None)
    return status if isinstance(status, int) else None


def translate_error(exc: BaseException, symbol: str) -> PortfolioEngineError:
    """Map an exception raised inside ``yfinance.Ticker.history`` to the engine's error.

    Parameters
    ----------
    exc : BaseException
        What yfinance (or the HTTP layer below it) raised.
    symbol : str
        The symbol being fetched, for the message.

    Returns
    -------
    PortfolioEngineError
        The error to raise, ``from exc`` (a ``DataError`` except for a rejected period).
    """
    status = _status_of(exc)
    if isinstance(exc, yf_errors.YFRateLimitError) or status == 429:
        return RateLimitedError(f"Yahoo Finance rate-limited the request for {symbol!r}.")
    if status is not None and status >= 500:
        return SourceUnavailableError(f"Yahoo Finance answered HTTP {status} for {symbol!r}.")
    if status == 404:
        return UnknownSymbolError(f"Yahoo Finance does not know symbol {symbol!r} (HTTP 404).")
    if status in (401, 403):
        return AuthenticationError(
            f"Yahoo Finance refused the request for {symbol!r} with HTTP {status}.",
            hint="Yahoo rejected yfinance's cookie/crumb; upgrade yfinance or retry later.",
        )
    if isinstance(exc, yf_errors.YFPricesMissingError):
        return EmptyDataError(
            f"Yahoo Finance has no bars for {symbol!r}: {exc.rationale}.",
            hint="Widen the date range; intraday bars only go back 8 to 730 days depending on the interval.",
        )
    if isinstance(exc, yf_errors.YFTickerMissingError):
        return UnknownSymbolError(f"Yahoo Finance does not know symbol {symbol!r}: {exc.rationale}.")
    if isinstance(exc, yf_errors.YFInvalidPeriodError):
        return ConfigurationError(f"Yahoo Finance rejected the period for {symbol!r}: {exc}.")
    if isinstance(exc, yf_errors.YFDataException):
        return SourceUnavailableError(f"Yahoo Finance is not serving data for {symbol!r}: {exc}.")
    if isinstance(exc, TimeoutError | curl_requests.exceptions.Timeout) or type(exc).__name__.endswith("Timeout"):
        return SourceUnavailableError(
            f"Yahoo Finance did not answer in time for {symbol!r}.",
            hint="Retry later, or raise the timeout (SPE_SOURCE_TIMEOUT_SECONDS).",
        )
    if isinstance(exc, json.JSONDecodeError | KeyError | IndexError | TypeError | ValueError):
        return MalformedResponseError(
            f"Yahoo Finance answered for {symbol!r} with an unexpected payload: {type(exc).__name__}: {exc}.",
            hint="Yahoo may have changed its chart API; upgrade yfinance.",
        )
    if isinstance(exc, OSError):  # curl_cffi's RequestException and builtin ConnectionError are OSErrors
        return SourceUnavailableError(f"Cannot reach Yahoo Finance for {symbol!r}: {type(exc).__name__}: {exc}.")
    return MalformedResponseError(
        f"yfinance failed for {symbol!r} with {type(exc).__name__}: {exc}.", hint="Upgrade yfinance or report it."
    )


def history_to_bars(history: Any, symbol: str, interval: str) -> pd.DataFrame:
    """Turn the frame ``Ticker.history(auto_adjust=False)`` returns into canonical bars.

    Raises
    ------
    EmptyDataError
        If the frame has no rows.
    MalformedResponseError
        If it lacks ``Close`` or a ``DatetimeIndex``.
    """
    if not isinstance(history, pd.DataFrame):
        raise MalformedResponseError(f"yfinance returned a {type(history).__name__} for {symbol!r}, not a DataFrame.")
    if history.empty:
        raise EmptyDataError(f"Yahoo Finance returned no bars for {symbol!r}.")
    if "Close" not in history.columns or not isinstance(history.index, pd.DatetimeIndex):
        raise MalformedResponseError(
            f"yfinance frame for {symbol!r} has columns {list(history.columns)} and a "
            f"{type(history.index).__name__}; expected OHLCV columns on a DatetimeIndex.",
            hint="Upgrade yfinance or report it.",
        )
    index = history.index
    intraday = interval.endswith(("m", "h"))
    if index.tz is not None and not intraday:
        index = index.tz_localize(None)  # keep the exchange's calendar date
    frame = history[[c for c in _COLUMNS if c in history.columns]].rename(columns=_COLUMNS)
    frame.insert(0, "date", index)
    frame.insert(1, "symbol", symbol)
    return conform_bars(frame.reset_index(drop=True))
