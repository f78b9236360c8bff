"""Compute a feature set (a :class:`FeatureSpec`) from a canonical bar table.

All symbols are computed at once on wide frames (dates x symbols) built on the universe's calendar
(the union of all symbols' dates), then gathered back to one row per input bar.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from portfolio_engine.data.schema import conform_bars
from portfolio_engine.exceptions import EmptyDataError, FeatureError
from portfolio_engine.features import indicators as ind
from portfolio_engine.features.definition import DEFAULT_FEATURE_SPEC, FeatureSpec

logger = logging.getLogger(__name__)


def _wide(
    bars: pd.DataFrame, column: str, dates: pd.DatetimeIndex, symbols: pd.Index, rows: tuple[np.ndarray, np.ndarray]
) -> pd.DataFrame:
    values = np.full((len(dates), len(symbols)), np.nan)
    values[rows] = bars[column].to_numpy(dtype="float64")
    return pd.DataFrame(values, index=dates, columns=symbols)


def _check_bars(bars: pd.DataFrame, spec: FeatureSpec) -> None:
    """Refuse bars that would give wrong features rather than NaN ones.

    Raises
    ------
    EmptyDataError, FeatureError
    """
    if bars.empty:
        raise EmptyDataError("No bars to compute features from.", hint="Check the symbols and dates of the request.")
    repeated = bars.duplicated(["symbol", "date"])
    if repeated.any():
        first = bars.loc[repeated].iloc[0]
        raise FeatureError(
            f"{int(repeated.sum())} repeated (symbol, date) bar(s), first {first['symbol']} on {first['date']}.",
            hint="Run validate_bars on the bars first; it reports and removes duplicates.",
        )
    adj = bars["adj_close"].to_numpy(dtype="float64")
    with np.errstate(invalid="ignore"):
        bad = np.isinf(adj) | (adj <= 0)
    if bad.any():
        example = bars.loc[bad].iloc[0]
        raise FeatureError(
            f"{int(bad.sum())} adj_close value(s) are infinite or not positive, first {example['symbol']} "
            f"on {example['date']}: {example['adj_close']}.",
            hint="Run validate_bars with the forward_fill or quarantine policy before computing features.",
        )
    missing = int(np.isnan(adj).sum())
    if missing:
        logger.warning("%d bar(s) without adj_close: their features are NaN", missing)
    if spec.index_symbol is not None and spec.beta_windows and spec.index_symbol not in set(bars["symbol"].astype(str)):
        raise FeatureError(
            f"Index symbol {spec.index_symbol!r} is not among the bars' symbols; beta and correlation need it.",
            hint="Include the index's bars, or set index_symbol=None in the feature spec to skip beta/correlation.",
        )


def compute_features(bars: pd.DataFrame, spec: FeatureSpec = DEFAULT_FEATURE_SPEC) -> pd.DataFrame:
    """Compute the features of ``spec`` for every bar.

    Parameters
    ----------
    bars : DataFrame of shape (n_bars, 8)
        Canonical long bar table (``portfolio_engine.data.schema``), ideally validated. Symbols may
        start and end on different dates; ``open``/``high``/``low`` may be NaN (no OHLC).
    spec : FeatureSpec, default DEFAULT_FEATURE_SPEC

    Returns
    -------
    DataFrame of shape (n_bars, 2 + n_features)
        ``date``, ``symbol``, then one float64 column per name in ``spec.feature_names()``; one row
        per input bar, sorted by ``(symbol, date)``. The index symbol's own rows are included (its
        beta and correlation are 1, its cross-sectional ranks NaN). Warm-up rows are kept, NaN until
        a window is full (the first 21 bars of a symbol for ``vol_21d``, 252 for ``mom_252_21``,
        14 for ``rsi_14``, 33 for ``macd_signal_9``). ``atr_*`` is NaN for symbols without OHLC and
        on close-only bars. A value at date t uses bars at or before t only.

    Raises
    ------
    SchemaError
        If the table lacks ``date``, ``symbol`` or a price column.
    EmptyDataError
        If it has no rows.
    FeatureError
        On repeated ``(symbol, date)`` keys, an infinite or non-positive ``adj_close``, or an
        ``index_symbol`` absent from the bars while beta/correlation are requested.
    """
    bars = conform_bars(bars)
    _check_bars(bars, spec)

    date_values = bars["date"].to_numpy(dtype="datetime64[ns]")
    calendar, date_idx = np.unique(date_values, return_inverse=True)
    symbol_values = bars["symbol"].astype(str).to_numpy(dtype=object)
    symbol_names, sym_idx = np.unique(symbol_values, return_inverse=True)
    dates = pd.DatetimeIndex(calendar)
    symbols = pd.Index([str(s) for s in symbol_names])
    rows = (date_idx, sym_idx)

    prices = _wide(bars, "adj_close", dates, symbols, rows)
    # OHLC are adjusted like adj_close (same factor), so ATR does not jump at splits and dividends.
    factor = _wide(bars, "adj_close", dates, symbols, rows) / _wide(bars, "close", dates, symbols, rows)
    high = _wide(bars, "high", dates, symbols, rows) * factor
    low = _wide(bars, "low", dates, symbols, rows) * factor

    simple = ind.simple_returns(prices)
    logret = ind.log_returns(prices)
    features: dict[str, pd.DataFrame] = {}
    if spec.returns:
        features["ret_1d"] = simple
        features["logret_1d"] = logret
    for window in spec.vol_windows:
        features[f"vol_{window}d"] = ind.rolling_volatility(logret, window, spec.periods_per_year)
    for ewma in spec.ewma_vol:
        features[ewma.name] = ind.ewma_volatility(
            logret,
            halflife=ewma.halflife,
            span=ewma.span,
            min_periods=ewma.warmup,
            periods_per_year=spec.periods_per_year,
        )
    for mom in spec.momentum:
        features[mom.name] = ind.momentum(prices, mom.lookback, mom.skip)
    for window in spec.rsi_windows:
        features[f"rsi_{window}"] = ind.rsi(prices, window)
    if spec.macd is not None:
        line, signal, hist = ind.macd(prices, spec.macd.fast, spec.macd.slow, spec.macd.signal)
        features.update(zip(spec.macd.names, (line, signal, hist), strict=True))
    if spec.bollinger is not None:
        pct_b, width = ind.bollinger(prices, spec.bollinger.window, spec.bollinger.k)
        features.update(zip(spec.bollinger.names, (pct_b, width), strict=True))
    for window in spec.atr_windows:
        features[f"atr_{window}"] = ind.atr(high, low, prices, window)
    if spec.drawdown:
        features["drawdown"] = ind.drawdown(prices)
    if spec.index_symbol is not None:
        for window in spec.beta_windows:
            beta, corr = ind.rolling_beta_corr(simple, simple[spec.index_symbol], window)
            features[f"beta_{window}d"] = beta
            features[f"corr_{window}d"] = corr

    # A bar without a price gets no feature values (exponential averages would otherwise carry on).
    has_price = prices.notna()
    features = {name: frame.where(has_price) for name, frame in features.items()}
    exclude = (spec.index_symbol,) if spec.index_symbol is not None else ()
    for name in spec.rank_features:
        features[f"rank_{name}"] = ind.cross_sectional_rank(features[name], exclude=exclude)

    columns: dict[str, object] = {"date": bars["date"].to_numpy(), "symbol": bars["symbol"].to_numpy()}
    for name in spec.feature_names():
        columns[name] = features[name].to_numpy(dtype="float64")[rows]
    out = pd.DataFrame(columns)
    out["symbol"] = out["symbol"].astype("string")
    logger.info("features computed", extra={"rows": len(out), "features": len(columns) - 2, "version": spec.version})
    return out
