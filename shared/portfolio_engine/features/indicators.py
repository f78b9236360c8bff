"""Technical indicators on wide frames, one column per symbol, one row per bar (oldest first).

Every function takes and returns frames of shape (n_rows, n_symbols) and works on all symbols at
once with pandas' rolling and exponentially weighted windows (no Python loop over dates). A row is a
bar: ``compute_features`` passes frames whose row k holds each symbol's k-th bar, so a window of w
rows is each symbol's last w bars; a frame indexed by dates works the same way. Every value at row
t depends on rows at or before t only: windows are trailing, exponential averages run forward,
nothing is filled backward or normalised over the full sample. Rows before a window is full are NaN;
a symbol that starts later (on a date index) simply has NaN before its first price.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def simple_returns(prices: pd.DataFrame) -> pd.DataFrame:
    """One-bar simple returns ``P[t] / P[t-1] - 1`` (NaN where either price is missing; never filled)."""
    return prices / prices.shift(1) - 1.0


def log_returns(prices: pd.DataFrame) -> pd.DataFrame:
    """One-bar log returns ``log P[t] - log P[t-1]``."""
    log_prices = pd.DataFrame(np.log(prices.to_numpy(dtype="float64")), index=prices.index, columns=prices.columns)
    return log_prices.diff()


def rolling_volatility(log_ret: pd.DataFrame, window: int, periods_per_year: int = 252) -> pd.DataFrame:
    """Annualised rolling volatility: sample std (ddof=1) of the last ``window`` log returns x sqrt(periods_per_year).

    Parameters
    ----------
    log_ret : DataFrame of shape (n_dates, n_symbols)
    window : int
        Bars in the window; the first ``window`` returns of a symbol give NaN.
    periods_per_year : int, default 252
    """
    return log_ret.rolling(window, min_periods=window).std(ddof=1) * np.sqrt(periods_per_year)


def ewma_volatility(
    log_ret: pd.DataFrame,
    *,
    halflife: float | None = None,
    span: float | None = None,
    min_periods: int = 1,
    periods_per_year: int = 252,
) -> pd.DataFrame:
    """Annualised EWMA volatility, RiskMetrics style: sqrt of the EWMA of squared log returns (zero mean).

    The weights of past squared returns decay by ``alpha`` per bar (from ``halflife`` or ``span``) and
    are normalised over the returns seen so far (pandas ``adjust=True``), so the estimate does not
    depend on an arbitrary starting value.

    Parameters
    ----------
    log_ret : DataFrame of shape (n_dates, n_symbols)
    halflife, span : float
        Exactly one of them, in bars.
    min_periods : int, default 1
        Returns needed before a value is reported.
    periods_per_year : int, default 252

    References
    ----------
    J.P. Morgan/Reuters (1996), RiskMetrics - Technical Document, 4th ed., section 5.2.
    """
    variance = (log_ret**2).ewm(halflife=halflife, span=span, adjust=True, min_periods=min_periods).mean()
    return (variance * periods_per_year) ** 0.5


def momentum(prices: pd.DataFrame, lookback: int, skip: int = 0) -> pd.DataFrame:
    """Price momentum ``P[t - skip] / P[t - lookback] - 1`` (12-1 month momentum: 252, 21).

    References
    ----------
    N. Jegadeesh, S. Titman (1993), Returns to buying winners and selling losers, Journal of Finance 48(1).
    """
    return prices.shift(skip) / prices.shift(lookback) - 1.0


def wilder_smooth(values: pd.DataFrame, window: int) -> pd.DataFrame:
    """Wilder's smoothing: seeded with the mean of the first ``window`` values, then ``m = m + (x - m) / window``.

    Parameters
    ----------
    values : DataFrame of shape (n_dates, n_symbols)
        NaN before a symbol's first value; the seed is the first full window of values.
    window : int

    Returns
    -------
    DataFrame of shape (n_dates, n_symbols)
        NaN before each column's seed.

    References
    ----------
    J. W. Wilder (1978), New Concepts in Technical Trading Systems, Trend Research.
    """
    sma = values.rolling(window, min_periods=window).mean()
    has_seed = sma.notna().cummax()
    seed_row = has_seed & ~has_seed.shift(1, fill_value=False)
    # Replace the column's values by NaN before the seed and by the seed at the seed row: an
    # exponential average with alpha = 1/window and no bias adjustment then is Wilder's recursion.
    seeded = values.where(has_seed).mask(seed_row, sma)
    return seeded.ewm(alpha=1.0 / window, adjust=False).mean().where(has_seed)


def rsi(prices: pd.DataFrame, window: int = 14) -> pd.DataFrame:
    """Wilder's Relative Strength Index in [0, 100].

    ``100 * G / (G + L)`` with G and L the Wilder-smoothed gains and losses of one-bar price changes,
    equal to ``100 - 100 / (1 + G / L)``: 100 when there were no losses, 0 with no gains, 50 for a flat
    window. The first value is at a symbol's ``window + 1``-th price.

    References
    ----------
    J. W. Wilder (1978), New Concepts in Technical Trading Systems, Trend Research.
    """
    change = prices.diff()
    gain = wilder_smooth(change.clip(lower=0.0), window)
    loss = wilder_smooth((-change).clip(lower=0.0), window)
    total = gain + loss
    with np.errstate(invalid="ignore", divide="ignore"):
        value = 100.0 * gain / total
    return value.mask((total == 0) & gain.notna(), 50.0)


def macd(
    prices: pd.DataFrame, fast: int = 12, slow: int = 26, signal: int = 9
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """MACD line, signal line and histogram.

    The EMAs (``alpha = 2 / (span + 1)``) start at a symbol's first price (pandas ``adjust=False``);
    the line is reported from the ``slow``-th price, the signal (EMA of the line from its first
    reported value) from the ``slow + signal - 1``-th.

    Returns
    -------
    line, signal_line, histogram : DataFrame of shape (n_dates, n_symbols)

    References
    ----------
    G. Appel (2005), Technical Analysis: Power Tools for Active Investors, FT Press.
    """
    ema_fast = prices.ewm(span=fast, adjust=False, min_periods=slow).mean()
    ema_slow = prices.ewm(span=slow, adjust=False, min_periods=slow).mean()
    line = ema_fast - ema_slow
    signal_line = line.ewm(span=signal, adjust=False, min_periods=signal).mean()
    return line, signal_line, line - signal_line


def bollinger(prices: pd.DataFrame, window: int = 20, k: float = 2.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Bollinger %b and bandwidth, with bands at SMA +/- k population (ddof=0) standard deviations.

    ``%b = (P - lower) / (upper - lower)`` (0 at the lower band, 1 at the upper);
    ``bandwidth = (upper - lower) / SMA``. NaN where the window's prices are all equal.

    References
    ----------
    J. Bollinger (2001), Bollinger on Bollinger Bands, McGraw-Hill.
    """
    mid = prices.rolling(window, min_periods=window).mean()
    sd = prices.rolling(window, min_periods=window).std(ddof=0)
    width = 2.0 * k * sd
    width = width.where(width > 0)
    pct_b = (prices - (mid - k * sd)) / width
    return pct_b, width / mid


def true_range(high: pd.DataFrame, low: pd.DataFrame, close: pd.DataFrame) -> pd.DataFrame:
    """Compute the true range ``max(H - L, |H - C[t-1]|, |L - C[t-1]|)`` (``H - L`` with no previous close)."""
    h, lo = high.to_numpy(dtype="float64"), low.to_numpy(dtype="float64")
    previous = close.shift(1).to_numpy(dtype="float64")
    hl = h - lo
    # fmax ignores a NaN previous close (a symbol's first bar); the where keeps NaN when H or L is missing.
    gaps = np.fmax(np.abs(h - previous), np.abs(lo - previous))
    values = np.where(np.isnan(hl), np.nan, np.fmax(hl, gaps))
    return pd.DataFrame(values, index=high.index, columns=high.columns)


def atr(high: pd.DataFrame, low: pd.DataFrame, close: pd.DataFrame, window: int = 14) -> pd.DataFrame:
    """Wilder's average true range: :func:`wilder_smooth` of :func:`true_range`, in price units.

    NaN on bars without high and low (a close-only stretch of a symbol with OHLC elsewhere).

    References
    ----------
    J. W. Wilder (1978), New Concepts in Technical Trading Systems, Trend Research.
    """
    ranges = true_range(high, low, close)
    # A bar without high/low has no ATR (the average is not carried over close-only bars).
    return wilder_smooth(ranges, window).where(ranges.notna())


def drawdown(prices: pd.DataFrame) -> pd.DataFrame:
    """Drawdown from the running maximum: ``P[t] / max(P[0..t]) - 1``, in [-1, 0]."""
    return prices / prices.cummax() - 1.0


def rolling_beta_corr(
    returns: pd.DataFrame, index_returns: pd.Series | pd.DataFrame, window: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Compute rolling beta ``cov(r, m) / var(m)`` and correlation of each column's returns to the index's.

    Only rows where both returns exist count; a value needs ``window`` such pairs.

    Parameters
    ----------
    returns : DataFrame of shape (n_rows, n_symbols)
    index_returns : Series of shape (n_rows,) or DataFrame of shape (n_rows, n_symbols)
        One index series for every column, or one per column (the index's returns paired with each
        symbol's on their shared dates), matched by column label. With a Series named like a column
        of ``returns``, that column's beta and correlation are exactly 1 (the index to itself).

    Returns
    -------
    beta, corr : DataFrame of shape (n_rows, n_symbols)
    """
    roll = returns.rolling(window, min_periods=window)
    if isinstance(index_returns, pd.DataFrame):
        covariance = roll.cov(index_returns, pairwise=False)
        paired_variance = index_returns.rolling(window, min_periods=window).cov(index_returns, pairwise=False)
        corr = roll.corr(index_returns, pairwise=False)
        return covariance / paired_variance.where(paired_variance > 0), corr
    covariance = roll.cov(index_returns)
    variance = index_returns.rolling(window, min_periods=window).cov(index_returns)
    beta = covariance.div(variance.where(variance > 0), axis=0)
    corr = roll.corr(index_returns)
    if index_returns.name in returns.columns:
        # rolling corr of a series with itself can land a few ulps from 1: state the identity exactly.
        corr[index_returns.name] = np.where(corr[index_returns.name].notna(), 1.0, np.nan)
        beta[index_returns.name] = np.where(beta[index_returns.name].notna(), 1.0, np.nan)
    return beta, corr


def cross_sectional_rank(values: pd.DataFrame, exclude: tuple[str, ...] = ()) -> pd.DataFrame:
    """Percentile rank across columns at each date, in (0, 1] (ties share their average rank).

    Columns in ``exclude`` (the index) are left out of the cross-section and get NaN.
    """
    members = [c for c in values.columns if c not in exclude]
    ranked = values[members].rank(axis=1, pct=True, method="average")
    return ranked.reindex(columns=values.columns)
