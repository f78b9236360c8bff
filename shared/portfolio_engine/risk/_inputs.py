"""Input checks of the risk measures and stress tests: weights, levels, horizons, returns, benchmark series.

Every public function of ``measures`` and ``stress`` validates through these, so the same bad input gives the same
:class:`~portfolio_engine.exceptions.RiskInputError` (naming the value received) everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from portfolio_engine.exceptions import PortfolioEngineError, RiskError, RiskInputError

#: Largest accepted ``|sum(weights) - budget|``: optimizer output is exact to ~1e-10, hand-typed weights to ~1e-6.
BUDGET_TOLERANCE = 1e-6
#: Trading days per year, for annualised figures.
PERIODS_PER_YEAR = 252


def check_weights(weights: pd.Series | Mapping[Any, float], *, budget: float | None = 1.0) -> pd.Series:
    """Weights as a float Series indexed by asset (a copy), checked.

    Parameters
    ----------
    weights : Series of shape (n_assets,) or mapping asset -> weight
    budget : float or None, default 1.0
        What the weights must sum to (within :data:`BUDGET_TOLERANCE`); None skips the check.

    Returns
    -------
    Series of shape (n_assets,)

    Raises
    ------
    RiskInputError
        Not a Series or mapping, empty, duplicate or non-numeric entries, a NaN or infinite weight (the assets are
        named), or a sum away from ``budget``.
    """
    if isinstance(weights, Mapping) and not isinstance(weights, pd.Series):
        weights = pd.Series(dict(weights), dtype="object")
    if not isinstance(weights, pd.Series):
        raise RiskInputError(
            f"weights must be a pandas Series indexed by asset (or a mapping); got {type(weights).__name__}.",
            hint="Pass e.g. pd.Series({'AAPL': 0.6, 'XOM': 0.4}) or OptimizationResult.weights.",
        )
    if weights.empty:
        raise RiskInputError("weights are empty.", hint="Pass at least one asset's weight.")
    if weights.index.has_duplicates:
        duplicated = sorted({str(a) for a in weights.index[weights.index.duplicated()]})
        raise RiskInputError(f"weights name assets {duplicated} more than once.", hint="Give each asset one weight.")
    try:
        values = pd.Series(weights.to_numpy(dtype="float64"), index=weights.index, name=weights.name)
    except (TypeError, ValueError) as exc:
        raise RiskInputError(f"weights hold non-numeric values ({exc}).", hint="Pass float weights.") from exc
    bad = ~np.isfinite(values.to_numpy())
    if bad.any():
        named = {str(a): weights[a] for a in values.index[bad]}
        raise RiskInputError(
            f"weights hold NaN or infinite values: {named}.",
            hint="Give every asset a finite weight (0.0 for an asset not held), e.g. weights.fillna(0.0).",
        )
    if budget is not None:
        total = float(values.sum())
        if not math.isfinite(float(budget)) or abs(total - float(budget)) > BUDGET_TOLERANCE:
            raise RiskInputError(
                f"weights sum to {total:.10g}; the budget is {budget!r} (tolerance {BUDGET_TOLERANCE:g}).",
                hint="Normalise them (weights / weights.sum() * budget) or pass the budget they follow (budget=...).",
            )
    return values


def check_level(level: float, *, name: str = "level") -> float:
    """A confidence level strictly inside (0, 1), as a float.

    Raises
    ------
    RiskInputError
        Not a number, or outside the open interval (0, 1) (the value is named).
    """
    number = _as_float(level)
    if not (0.0 < number < 1.0):
        raise RiskInputError(
            f"{name} must lie strictly between 0 and 1; got {level!r}.",
            hint="Pass a confidence level such as 0.95 or 0.99 (not 95).",
        )
    return number


def check_horizon(horizon: int) -> int:
    """A horizon in whole trading days, >= 1.

    Raises
    ------
    RiskInputError
        Not a whole number, or <= 0 (the value is named).
    """
    number = _as_float(horizon)
    if isinstance(horizon, bool) or not (number >= 1 and number == math.floor(number)):
        raise RiskInputError(
            f"horizon must be a whole number of trading days >= 1; got {horizon!r}.",
            hint="Pass e.g. horizon=1 (one day) or horizon=10 (two weeks).",
        )
    return int(number)


def check_positive_number(value: float, name: str) -> float:
    """A finite number > 0, as a float.

    Raises
    ------
    RiskInputError
        Not a finite positive number (the value is named).
    """
    number = _as_float(value)
    if not (math.isfinite(number) and number > 0):
        raise RiskInputError(f"{name} must be a finite number > 0; got {value!r}.", hint=f"Pass {name} > 0.")
    return number


def _as_float(value: Any) -> float:
    """``value`` as a float when it is a real number (not a string), else NaN (which every check rejects)."""
    if isinstance(value, str | bytes):
        return float("nan")
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def check_known_assets(assets: pd.Index, known: pd.Index, *, what: str) -> None:
    """Raise when ``assets`` name an asset that ``known`` (the columns of ``what``) does not hold.

    Raises
    ------
    RiskInputError
        The unknown assets are listed.
    """
    unknown = [str(a) for a in assets if a not in known]
    if unknown:
        raise RiskInputError(
            f"weights name assets {unknown} that {what} does not hold (it has {[str(a) for a in known]}).",
            hint=f"Add their columns to {what}, or drop them from the weights.",
        )


def check_returns_frame(returns: pd.DataFrame, *, name: str = "returns", dated: bool = True) -> None:
    """Raise unless ``returns`` is a DataFrame with unique columns and (when ``dated``) a unique, sorted index.

    Raises
    ------
    RiskInputError
        Not a DataFrame, duplicate columns, or (``dated``) duplicate dates or dates out of order.
    """
    if not isinstance(returns, pd.DataFrame):
        raise RiskInputError(
            f"{name} must be a DataFrame of simple returns (rows = dates, columns = assets); "
            f"got {type(returns).__name__}.",
            hint="Build it from prices: prices.pct_change().dropna().",
        )
    if returns.columns.has_duplicates:
        raise RiskInputError(
            f"{name} has duplicate columns {sorted({str(c) for c in returns.columns[returns.columns.duplicated()]})}.",
            hint="Give each asset one column.",
        )
    if dated and (returns.index.has_duplicates or not returns.index.is_monotonic_increasing):
        raise RiskInputError(
            f"{name} must have unique dates in increasing order.", hint="Sort and de-duplicate: returns.sort_index()."
        )


def held_returns(
    weights: pd.Series,
    returns: pd.DataFrame,
    *,
    name: str = "returns",
    min_observations: int = 2,
    dated: bool = True,
) -> np.ndarray:
    """The returns of the weights' assets, in the weights' order, as a finite float array.

    Parameters
    ----------
    weights : Series of shape (n_assets,)
        Already checked (:func:`check_weights`).
    returns : DataFrame of shape (n_observations, n_columns)
        Simple daily returns; may hold more assets than the weights (those are ignored).
    name : str, default "returns"
    min_observations : int, default 2
    dated : bool, default True
        Rows are dates (unique, increasing); False for scenarios, whose order does not matter.

    Returns
    -------
    ndarray of shape (n_observations, n_assets)

    Raises
    ------
    RiskInputError
        Not a DataFrame, unsorted or repeated dates, unknown assets, non-numeric or non-finite returns of a held
        asset, or a return <= -1.
    RiskError
        Fewer than ``min_observations`` rows.
    """
    check_returns_frame(returns, name=name, dated=dated)
    check_known_assets(weights.index, returns.columns, what=name)
    try:
        values = returns.loc[:, weights.index].to_numpy(dtype="float64", copy=True)
    except (TypeError, ValueError) as exc:
        raise RiskInputError(f"{name} hold non-numeric values ({exc}).", hint="Convert to float returns.") from exc
    finite = np.isfinite(values)
    if not finite.all():
        rows = ~finite.all(axis=1)
        cols = [str(a) for a, ok in zip(weights.index, finite.all(axis=0), strict=True) if not ok]
        raise RiskInputError(
            f"{name} hold {int(rows.sum())} row(s) with NaN or infinite returns of held assets {cols} "
            f"(first at {returns.index[int(np.argmax(rows))]!r}).",
            hint="Drop those rows (returns.dropna()), or restrict the history to dates where every held asset trades.",
        )
    if (values <= -1.0).any():
        raise RiskInputError(
            f"{name} hold a simple return <= -1 (a total loss or worse); min {float(values.min()):.6g}.",
            hint="Pass simple returns (prices.pct_change()), not log returns or P&L in currency.",
        )
    if values.shape[0] < min_observations:
        raise RiskError(
            f"{name} hold {values.shape[0]} observation(s); this measure needs at least {min_observations}.",
            hint="Use a longer history or a shorter horizon.",
        )
    return values


def aligned_series(
    series: pd.Series, index: pd.Index, *, name: str, error: type[PortfolioEngineError] = RiskInputError
) -> np.ndarray:
    """``series`` on the dates of ``index`` as finite floats.

    Raises
    ------
    RiskInputError (or ``error``)
        Not a Series, or a date of ``index`` without a finite value (the first one and the count are named).
    """
    if not isinstance(series, pd.Series):
        raise error(
            f"{name} must be a pandas Series indexed by date; got {type(series).__name__}.",
            hint="Pass e.g. the index's or the benchmark's daily returns: prices.pct_change().dropna().",
        )
    try:
        values = series.reindex(index).to_numpy(dtype="float64")
    except (TypeError, ValueError) as exc:
        raise error(f"{name} cannot be aligned to the returns' dates ({exc}).", hint="Index it by date.") from exc
    missing = ~np.isfinite(values)
    if missing.any():
        raise error(
            f"{name} has no finite value on {int(missing.sum())} of the {len(index)} return dates "
            f"(first {index[int(np.argmax(missing))]!r}).",
            hint=f"Give {name} a value on every return date, or trim the returns to its dates.",
        )
    return values
