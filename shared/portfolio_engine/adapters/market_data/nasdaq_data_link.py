"""Nasdaq Data Link (formerly Quandl) time-series datasets over its REST API.

``GET https://data.nasdaq.com/api/v3/datasets/{database}/{code}/data.json?api_key=...&start_date=...&end_date=...``
answers ``{"dataset_data": {"column_names": [...], "data": [[...], ...]}}``; errors come with an HTTP 4xx
status and ``{"quandl_error": {"code": "QECx02", "message": ...}}``. Symbols are ``"DATABASE/CODE"``
(``"WIKI/AAPL"``, ``"EOD/AAPL"``) and are kept as given in the ``symbol`` column.

Why ``requests`` and not the ``nasdaq-data-link`` package: that SDK keeps the API key in module-global
state (``nasdaqdatalink.ApiConfig.api_key``) and makes its own HTTP calls with its own retry settings.
Calling the one REST endpoint directly lets every request go through the engine's resilience wrapper
(rate limit, retries, breaker, cache) like the other sources, keeps the key per instance, and saves a
dependency.

Error codes (``quandl_error.code``) by class: ``QEA`` authentication, ``QEP`` permission/premium,
``QEL`` rate limit, ``QEC`` unknown or malformed dataset code, ``QES`` server side, ``QEX`` bad
request parameters.

Caching: the answer for a range that has no end or reaches today (see ``_common.is_settled``) is kept
for ``ResiliencePolicy.open_range_ttl_seconds`` only, a closed historical range for ``cache_ttl_seconds``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import date
from functools import partial
from typing import Any, ClassVar

import pandas as pd
import requests

from portfolio_engine.adapters.market_data._common import check_range, fetch_each, is_settled, normalize_symbols
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
    SourceUnavailableError,
    UnknownSymbolError,
)
from portfolio_engine.ports import ResponseCache

logger = logging.getLogger(__name__)

BASE_URL = "https://data.nasdaq.com/api/v3"
DEFAULT_POLICY = ResiliencePolicy(requests_per_minute=120)
_SYMBOL = re.compile(r"^(?P<database>[A-Za-z0-9_]+)/(?P<code>[A-Za-z0-9_.\-]+)$")
#: ``collapse`` parameter per engine interval (the API aggregates to the last value of each period).
_COLLAPSE = {"1d": None, "1wk": "weekly", "1mo": "monthly", "3mo": "quarterly"}
#: Normalised column name -> canonical column; the first match wins for ``close``.
_COLUMNS = {
    "date": "date",
    "open": "open",
    "high": "high",
    "low": "low",
    "close": "close",
    "last": "close",
    "settle": "close",
    "volume": "volume",
    "adj close": "adj_close",
    "adjusted close": "adj_close",
}


def _normalise(name: str) -> str:
    """``"Adj. Close"``, ``"adj_close"``, ``"Adj_Close"`` -> ``"adj close"``."""
    return " ".join(re.sub(r"[._\-]", " ", name).lower().split())


class NasdaqDataLinkSource:
    """Bars from Nasdaq Data Link time-series datasets (``"WIKI/AAPL"``, ``"EOD/AAPL"``).

    Parameters
    ----------
    api_key : str or None
        The Nasdaq Data Link key (``Settings.nasdaq_data_link_api_key``). None or blank fails at ``fetch``.
    policy : ResiliencePolicy, optional
        Rate limit, retries, breaker, timeout, cache TTLs; defaults to ``DEFAULT_POLICY`` (120 requests
        per minute). To change a few fields only: ``DEFAULT_POLICY.merged({...})``.
    cache : ResponseCache, optional
        Response cache; None disables caching.
    session : requests.Session, optional
        HTTP session (a new one by default).
    base_url : str, default ``BASE_URL``
        API root, overridable for a proxy.
    """

    name = "nasdaq_data_link"
    #: The source's own limits: 120 a minute stays below a keyed user's 2,000 calls per 10 minutes.
    DEFAULT_POLICY: ClassVar[ResiliencePolicy] = DEFAULT_POLICY

    def __init__(
        self,
        api_key: str | None,
        *,
        policy: ResiliencePolicy | None = None,
        cache: ResponseCache | None = None,
        session: requests.Session | None = None,
        base_url: str = BASE_URL,
    ) -> None:
        self._api_key = (api_key or "").strip() or None
        self.policy = policy or DEFAULT_POLICY
        self.base_url = base_url.rstrip("/")
        self._session = session or requests.Session()
        self._caller = ResilientCaller(self.name, self.policy, cache)

    def __repr__(self) -> str:
        """Describe the source without its key."""
        return f"NasdaqDataLinkSource(base_url={self.base_url!r})"

    def fetch(
        self,
        symbols: Sequence[str],
        start: date | None = None,
        end: date | None = None,
        interval: str = "1d",
    ) -> pd.DataFrame:
        """Return bars for ``"DATABASE/CODE"`` symbols from ``start`` through ``end`` (inclusive).

        Returns
        -------
        DataFrame
            Canonical bars; ``symbol`` is the dataset code as requested.

        Raises
        ------
        AuthenticationError
            No key configured, the key is rejected, or the dataset needs a subscription.
        UnknownSymbolError
            The symbol is not ``DATABASE/CODE`` or the dataset does not exist.
        EmptyDataError
            No symbol has a row in the range.
        RateLimitedError, SourceUnavailableError, CircuitOpenError, MalformedResponseError
            See ``resilience.ResilientCaller.call``.
        ConfigurationError
            Unsupported ``interval`` or ``start`` after ``end``.
        """
        if interval not in _COLLAPSE:
            raise ConfigurationError(
                f"Source 'nasdaq_data_link' does not serve interval {interval!r}.",
                hint=f"Use one of {sorted(_COLLAPSE)}.",
            )
        names = normalize_symbols(symbols, source=self.name)
        first, last = check_range(start, end)
        for symbol in names:
            if not _SYMBOL.match(symbol):
                raise UnknownSymbolError(
                    f"{symbol!r} is not a Nasdaq Data Link dataset code.",
                    hint="Write symbols as 'DATABASE/CODE', e.g. 'WIKI/AAPL' or 'EOD/AAPL'.",
                )
        if self._api_key is None:
            raise AuthenticationError(
                "No Nasdaq Data Link API key is configured.",
                hint="Set SPE_NASDAQ_DATA_LINK_API_KEY (account page at https://data.nasdaq.com) "
                "or SPE_NASDAQ_DATA_LINK_SECRET_ID for AWS Secrets Manager.",
            )
        open_ended = not is_settled(last)
        return fetch_each(
            names,
            lambda symbol: self._caller.call(
                {"symbol": symbol, "start": first, "end": last, "interval": interval},
                partial(self._fetch_dataset, symbol, first, last, _COLLAPSE[interval]),
                open_ended=open_ended,
            ),
            source=self.name,
            start=first,
            end=last,
        )

    def _fetch_dataset(self, symbol: str, start: date | None, end: date | None, collapse: str | None) -> pd.DataFrame:
        params = {"api_key": self._api_key or "", "order": "asc"}
        if start is not None:
            params["start_date"] = start.isoformat()
        if end is not None:
            params["end_date"] = end.isoformat()
        if collapse is not None:
            params["collapse"] = collapse
        response = http_get(
            self._session,
            f"{self.base_url}/datasets/{symbol}/data.json",
            params=params,
            timeout=self.policy.timeout_seconds,
            source=self.name,
            secret=self._api_key,
        )
        if response.status_code >= 400:
            _raise_for_error(response, symbol)
        return parse_dataset_data(decode_json(response, source=self.name), symbol)


def _raise_for_error(response: requests.Response, symbol: str) -> None:
    """Raise the engine error for a 4xx answer, from its ``quandl_error`` code or else its status."""
    status = response.status_code
    try:
        error = response.json().get("quandl_error") or {}
    except (ValueError, AttributeError):
        error = {}
    code = str(error.get("code", ""))
    message = str(error.get("message", response.reason))
    detail = f"Nasdaq Data Link answered HTTP {status} ({code or 'no code'}) for {symbol!r}: {message}"
    if code.startswith("QEL"):
        raise RateLimitedError(detail)
    if code.startswith("QEA") or status == 401:
        raise AuthenticationError(detail, hint="Check SPE_NASDAQ_DATA_LINK_API_KEY on your account page.")
    if code.startswith("QEP") or status == 403:
        raise AuthenticationError(detail, hint="This dataset needs a subscription on data.nasdaq.com.")
    if code.startswith("QEC") or status == 404:
        raise UnknownSymbolError(detail, hint="Check the dataset code on data.nasdaq.com, e.g. 'WIKI/AAPL'.")
    if code.startswith("QES"):
        raise SourceUnavailableError(detail)
    raise DataSourceError(detail, hint="Check the request parameters (dates, interval).")


def parse_dataset_data(payload: Any, symbol: str) -> pd.DataFrame:
    """Turn a ``dataset_data`` body into canonical bars.

    Column names are matched case-insensitively, ignoring ``.``, ``_`` and ``-``: ``Date``, ``Open``,
    ``High``, ``Low``, ``Close`` (or ``Last``/``Settle``), ``Volume``, ``Adj. Close``/``Adj_Close``.
    Other columns (dividends, split ratios, adjusted open/high/low) are dropped.

    Parameters
    ----------
    payload : object
        The decoded JSON body.
    symbol : str
        The dataset code, written to the ``symbol`` column.

    Returns
    -------
    DataFrame
        Canonical bars sorted by date.

    Raises
    ------
    EmptyDataError
        If ``data`` holds no rows.
    MalformedResponseError
        If ``dataset_data``, ``column_names`` or ``data`` is missing or has the wrong shape, or no
        date or close column can be found.
    """
    dataset = payload.get("dataset_data") if isinstance(payload, dict) else None
    if not isinstance(dataset, dict):
        keys = sorted(payload) if isinstance(payload, dict) else type(payload).__name__
        raise MalformedResponseError(
            f"Nasdaq Data Link body for {symbol!r} has no 'dataset_data' object; got {keys}.",
            hint="The API may have changed; check https://docs.data.nasdaq.com/docs/time-series.",
        )
    names, data = dataset.get("column_names"), dataset.get("data")
    if not isinstance(names, list) or not isinstance(data, list):
        raise MalformedResponseError(
            f"Nasdaq Data Link 'dataset_data' for {symbol!r} lacks 'column_names' or 'data' lists."
        )
    if not data:
        raise EmptyDataError(f"Nasdaq Data Link returned no rows for {symbol!r}.")
    if any(not isinstance(row, list) or len(row) != len(names) for row in data):
        raise MalformedResponseError(
            f"Nasdaq Data Link rows for {symbol!r} do not match its {len(names)} column names {names}."
        )
    rename: dict[str, str] = {}
    for original in names:
        target = _COLUMNS.get(_normalise(str(original)))
        if target is not None and target not in rename.values():
            rename[str(original)] = target
    if "date" not in rename.values() or not {"close", "adj_close"} & set(rename.values()):
        raise MalformedResponseError(
            f"Nasdaq Data Link dataset {symbol!r} has no date or close column; columns: {names}.",
            hint="Use a price dataset with Date and Close (or Last/Settle) columns, e.g. 'WIKI/AAPL'.",
        )
    frame = pd.DataFrame(data, columns=[str(n) for n in names])[list(rename)].rename(columns=rename)
    frame["symbol"] = symbol
    try:
        return conform_bars(frame)
    except (SchemaError, ValueError, TypeError) as exc:
        raise MalformedResponseError(f"Nasdaq Data Link dataset {symbol!r} is not usable: {exc}") from exc
