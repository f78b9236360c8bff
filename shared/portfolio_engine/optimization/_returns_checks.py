"""Checks shared by the moment estimators and factor models: returns tables, aligned series, EWMA decay."""

from __future__ import annotations

import numpy as np
import pandas as pd

from portfolio_engine.exceptions import DataError, SpecificationError


def check_returns(
    returns: pd.DataFrame, *, min_observations: int = 2, name: str = "returns", reject_constant: bool = True
) -> np.ndarray:
    """Validate a returns table and return its values as a float64 array (a copy).

    Parameters
    ----------
    returns : DataFrame of shape (n_observations, n_assets)
    min_observations : int, default 2
        Fewest rows the caller's estimator needs.
    name : str, default "returns"
        What the table is called in error messages.
    reject_constant : bool, default True
        Reject a column whose values are all equal (checked from two rows on): its variance is zero.

    Returns
    -------
    ndarray of shape (n_observations, n_assets)

    Raises
    ------
    SpecificationError
        ``returns`` is not a DataFrame.
    DataError
        No columns, duplicate or non-numeric columns, a NaN or infinite value, fewer than
        ``min_observations`` rows, or a constant column.
    """
    if not isinstance(returns, pd.DataFrame):
        raise SpecificationError(
            f"{name} must be a pandas DataFrame (rows = dates, columns = assets); got {type(returns).__name__}.",
            hint="Wrap the array: pd.DataFrame(values, index=dates, columns=assets).",
        )
    if returns.shape[1] == 0:
        raise DataError(f"{name} has no columns.", hint="Pass at least one asset's returns.")
    if returns.columns.has_duplicates:
        duplicated = sorted({str(c) for c in returns.columns[returns.columns.duplicated()]})
        raise DataError(f"{name} has duplicate columns {duplicated}.", hint="Give each asset one column.")
    try:
        values = returns.to_numpy(dtype="float64", copy=True)
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"{name} holds non-numeric values ({exc}).", hint="Convert every column to float returns."
        ) from exc
    bad_rows = ~np.isfinite(values).all(axis=1)
    if bad_rows.any():
        bad_cols = [str(c) for c in returns.columns[~np.isfinite(values).all(axis=0)]]
        raise DataError(
            f"{name} has {int(bad_rows.sum())} row(s) with NaN or infinite values (first at "
            f"{returns.index[int(np.argmax(bad_rows))]!r}; columns {bad_cols}).",
            hint="Drop those rows (returns.dropna()) or restrict the universe to assets with a common history.",
        )
    if values.shape[0] < min_observations:
        raise DataError(
            f"{name} has {values.shape[0]} observation(s); this estimate needs at least {min_observations}.",
            hint="Use a longer history, fewer assets, or an estimator that needs fewer observations.",
        )
    constant = (values == values[:1]).all(axis=0)
    if reject_constant and values.shape[0] >= 2 and constant.any():
        names = [str(c) for c in returns.columns[constant]]
        raise DataError(
            f"{name} has constant column(s) {names}: zero variance.",
            hint="Drop them, or check that the prices behind them are not forward-filled placeholders.",
        )
    return values


def check_series(series: pd.Series, index: pd.Index, *, name: str) -> np.ndarray:
    """Align a series (a market or factor return) to ``index`` by label and return its float values.

    Raises
    ------
    SpecificationError
        ``series`` is not a Series.
    DataError
        A date of ``index`` is missing from ``series`` or its value is not finite.
    """
    if not isinstance(series, pd.Series):
        raise SpecificationError(
            f"{name} must be a pandas Series indexed like the returns; got {type(series).__name__}.",
            hint="Pass e.g. the index's returns as a Series with the same dates.",
        )
    values = series.reindex(index).to_numpy(dtype="float64")
    missing = ~np.isfinite(values)
    if missing.any():
        raise DataError(
            f"{name} has no finite value on {int(missing.sum())} of the {len(index)} return dates "
            f"(first {index[int(np.argmax(missing))]!r}).",
            hint=f"Give {name} a value on every date of the returns (same index), or trim the returns.",
        )
    return values


def ewma_alpha(span: float | None, halflife: float | None) -> float:
    """Decay per period from exactly one of ``span`` (alpha = 2 / (span + 1)) or ``halflife``.

    Raises
    ------
    SpecificationError
        Neither or both given, or a value out of range (span >= 1, halflife > 0).
    """
    if (span is None) == (halflife is None):
        raise SpecificationError(
            f"EWMA needs exactly one of span or halflife; got span={span!r}, halflife={halflife!r}.",
            hint="Pass e.g. span=180 (PyPortfolioOpt's default) or halflife=63 (periods).",
        )
    if span is not None:
        if not span >= 1:
            raise SpecificationError(f"EWMA span must be >= 1; got {span!r}.", hint="Use a span in periods, e.g. 180.")
        return 2.0 / (float(span) + 1.0)
    assert halflife is not None
    if not halflife > 0:
        raise SpecificationError(f"EWMA halflife must be > 0; got {halflife!r}.", hint="Use e.g. halflife=63.")
    return 1.0 - float(np.exp(-np.log(2.0) / float(halflife)))


def ewma_weights(n: int, alpha: float) -> np.ndarray:
    """Weights ``(1 - alpha)^age`` of ``n`` observations (oldest first), normalised to sum to one.

    These are pandas' ``ewm(adjust=True)`` weights: no arbitrary starting value enters the average.
    """
    weights = (1.0 - alpha) ** np.arange(n - 1, -1, -1, dtype="float64")
    return weights / weights.sum()
