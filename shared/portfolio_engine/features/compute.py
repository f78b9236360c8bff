"""Compute a feature set (a :class:`FeatureSpec`) from a canonical bar table.

Each symbol's indicators are computed on its own bars, in date order: a 21-bar window is the
symbol's last 21 bars, whatever dates the other symbols have, so a stray bar of one symbol cannot
change another symbol's features. All symbols are still computed at once (no Python loop over
symbols or dates) on wide frames whose rows are bar numbers: row k holds every symbol's k-th bar.
Symbols are aligned by date only where a feature compares them:

* beta and correlation to the index pair a symbol's returns with the index's over the same
  intervals: both price series are restricted to the dates they share, then turned into returns;
* cross-sectional ranks compare, at each date, the symbols that have a value on that date.

The output has exactly one row per input bar.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from portfolio_engine.data.schema import conform_bars
from portfolio_engine.exceptions import EmptyDataError, FeatureError
from portfolio_engine.features import indicators as ind
from portfolio_engine.features.definition import DEFAULT_FEATURE_SPEC, FeatureSpec

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _BarLayout:
    """Where each bar of a long table sits in a wide frame of shape (n_bar_numbers, n_symbols).

    Attributes
    ----------
    row : ndarray of int, shape (n_bars,)
        The bar's number within its symbol (0 for its first bar), in date order.
    column : ndarray of int, shape (n_bars,)
        The bar's symbol, as a column number.
    symbols : Index of shape (n_symbols,)
        Column labels.
    """

    row: np.ndarray
    column: np.ndarray
    symbols: pd.Index

    @classmethod
    def of(cls, column: np.ndarray, symbols: pd.Index) -> _BarLayout:
        """Lay out bars given in date order within each symbol, with their symbol's column number."""
        row = pd.Series(column).groupby(column).cumcount().to_numpy(dtype=np.int64)
        return cls(row=row, column=column, symbols=symbols)

    def wide(self, values: np.ndarray) -> pd.DataFrame:
        """Spread one value per bar into the wide frame (NaN past a symbol's last bar)."""
        n_rows = int(self.row.max()) + 1 if len(self.row) else 0
        out = np.full((n_rows, len(self.symbols)), np.nan)
        out[self.row, self.column] = values
        return pd.DataFrame(out, columns=self.symbols)

    def gather(self, frame: pd.DataFrame) -> np.ndarray:
        """Read one value per bar back from a wide frame."""
        return frame.to_numpy(dtype="float64")[self.row, self.column]


def _check_bars(bars: pd.DataFrame, column: np.ndarray, symbols: pd.Index, spec: FeatureSpec) -> None:
    """Refuse bars that would give wrong features rather than NaN ones.

    ``bars`` are sorted by ``(symbol, date)`` and ``column`` holds each bar's symbol number, so repeated
    keys are neighbours.

    Raises
    ------
    EmptyDataError, FeatureError
    """
    if bars.empty:
        raise EmptyDataError("No bars to compute features from.", hint="Check the symbols and dates of the request.")
    dates = bars["date"].to_numpy(dtype="datetime64[ns]")
    keyless = (column < 0) | np.isnat(dates)
    if keyless.any():
        raise FeatureError(
            f"{int(keyless.sum())} bar(s) without a symbol or a date.",
            hint="Run validate_bars on the bars first; it reports and removes rows without a key.",
        )
    repeated = np.zeros(len(bars), dtype=bool)
    repeated[1:] = (column[1:] == column[:-1]) & (dates[1:] == dates[:-1])
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
    if spec.index_symbol is not None and spec.beta_windows and spec.index_symbol not in symbols:
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
        per input bar, sorted by ``(symbol, date)``. Windows count the symbol's own bars. The index
        symbol's own rows are included (its beta and correlation are 1, its cross-sectional ranks
        NaN); beta and correlation are NaN on bars on dates the index has no bar. Warm-up rows are
        kept, NaN until a window is full (the first 21 bars of a symbol for ``vol_21d``, 252 for
        ``mom_252_21``, 14 for ``rsi_14``, 33 for ``macd_signal_9``). ``atr_*`` is NaN for symbols
        without OHLC and on close-only bars. Ranks compare the symbols with a value on the bar's
        date. A value at date t uses bars at or before t only.

    Raises
    ------
    SchemaError
        If the table lacks ``date``, ``symbol`` or a price column.
    EmptyDataError
        If it has no rows.
    FeatureError
        On bars without a symbol or date, repeated ``(symbol, date)`` keys, an infinite or
        non-positive ``adj_close``, or an ``index_symbol`` absent from the bars while
        beta/correlation are requested.
    """
    bars = conform_bars(bars)
    codes, names = pd.factorize(bars["symbol"], sort=True)
    column = np.asarray(codes, dtype=np.int64)
    symbols = pd.Index([str(s) for s in names], dtype=object)
    _check_bars(bars, column, symbols, spec)

    layout = _BarLayout.of(column, symbols)
    adj = bars["adj_close"].to_numpy(dtype="float64")
    # OHLC are adjusted like adj_close (same factor), so ATR does not jump at splits and dividends.
    factor = adj / bars["close"].to_numpy(dtype="float64")

    prices = layout.wide(adj)
    high = layout.wide(bars["high"].to_numpy(dtype="float64") * factor)
    low = layout.wide(bars["low"].to_numpy(dtype="float64") * factor)
    simple = ind.simple_returns(prices)
    logret = ind.log_returns(prices)
    frames: dict[str, pd.DataFrame] = {}
    if spec.returns:
        frames["ret_1d"] = simple
        frames["logret_1d"] = logret
    for window in spec.vol_windows:
        frames[f"vol_{window}d"] = ind.rolling_volatility(logret, window, spec.periods_per_year)
    for ewma in spec.ewma_vol:
        frames[ewma.name] = ind.ewma_volatility(
            logret,
            halflife=ewma.halflife,
            span=ewma.span,
            min_periods=ewma.warmup,
            periods_per_year=spec.periods_per_year,
        )
    for mom in spec.momentum:
        frames[mom.name] = ind.momentum(prices, mom.lookback, mom.skip)
    for window in spec.rsi_windows:
        frames[f"rsi_{window}"] = ind.rsi(prices, window)
    if spec.macd is not None:
        line, signal, hist = ind.macd(prices, spec.macd.fast, spec.macd.slow, spec.macd.signal)
        frames.update(zip(spec.macd.names, (line, signal, hist), strict=True))
    if spec.bollinger is not None:
        pct_b, width = ind.bollinger(prices, spec.bollinger.window, spec.bollinger.k)
        frames.update(zip(spec.bollinger.names, (pct_b, width), strict=True))
    for window in spec.atr_windows:
        frames[f"atr_{window}"] = ind.atr(high, low, prices, window)
    if spec.drawdown:
        frames["drawdown"] = ind.drawdown(prices)

    # A bar without a price gets no feature values (exponential averages would otherwise carry on).
    has_price = ~np.isnan(adj)
    features = {name: np.where(has_price, layout.gather(frame), np.nan) for name, frame in frames.items()}
    if spec.index_symbol is not None and spec.beta_windows:
        dates = bars["date"].to_numpy(dtype="datetime64[ns]")
        for name, values in _beta_corr(dates, column, adj, symbols, spec.index_symbol, spec.beta_windows).items():
            features[name] = np.where(has_price, values, np.nan)

    exclude = (spec.index_symbol,) if spec.index_symbol is not None else ()
    if spec.rank_features:
        _, date_row = np.unique(bars["date"].to_numpy(dtype="datetime64[ns]"), return_inverse=True)
        by_date = _BarLayout(row=date_row, column=column, symbols=symbols)
        for name in spec.rank_features:
            ranks = ind.cross_sectional_rank(by_date.wide(features[name]), exclude=exclude)
            features[f"rank_{name}"] = by_date.gather(ranks)

    columns: dict[str, object] = {"date": bars["date"].to_numpy(), "symbol": bars["symbol"].to_numpy()}
    for name in spec.feature_names():
        columns[name] = np.asarray(features[name], dtype="float64")
    out = pd.DataFrame(columns)
    out["symbol"] = out["symbol"].astype("string")
    logger.info("features computed", extra={"rows": len(out), "features": len(columns) - 2, "version": spec.version})
    return out


def _beta_corr(
    dates: np.ndarray,
    column: np.ndarray,
    adj: np.ndarray,
    symbols: pd.Index,
    index_symbol: str,
    windows: tuple[int, ...],
) -> dict[str, np.ndarray]:
    """Rolling beta and correlation of every symbol's simple returns to the index's, one value per bar.

    Each symbol is paired with the index on the dates both have a bar: both price series are
    restricted to those dates, and a return runs from one shared date to the next, so the two
    returns of a pair always cover the same interval. A bar on a date the index lacks gets NaN; a
    window counts ``w`` such pairs. The index paired with itself has beta and correlation exactly 1.

    Returns
    -------
    dict of str to ndarray of shape (n_bars,)
        ``beta_<w>d`` and ``corr_<w>d`` for each window.
    """
    index_col = list(symbols).index(index_symbol)
    on_index = column == index_col
    index_dates, index_prices = dates[on_index], adj[on_index]  # sorted by date: bars are (symbol, date) sorted
    where = np.clip(np.searchsorted(index_dates, dates), 0, max(len(index_dates) - 1, 0))
    shared = index_dates[where] == dates
    paired = _BarLayout.of(column[shared], symbols)
    stock = ind.simple_returns(paired.wide(adj[shared]))
    market = ind.simple_returns(paired.wide(index_prices[where[shared]]))
    out: dict[str, np.ndarray] = {}
    for window in windows:
        beta, corr = ind.rolling_beta_corr(stock, market, window)
        for name, frame in ((f"beta_{window}d", beta), (f"corr_{window}d", corr)):
            values = paired.gather(frame)
            # The index against itself: the identity, stated exactly rather than up to rounding.
            values = np.where((column[shared] == index_col) & ~np.isnan(values), 1.0, values)
            full = np.full(len(dates), np.nan)
            full[shared] = values
            out[name] = full
    return out
