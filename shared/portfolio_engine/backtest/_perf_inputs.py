"""Input checks and the risk-free conversion shared by the performance metrics and the attribution.

Data problems (empty, NaN, dates that do not line up, too few observations) raise :class:`DataError`
(:class:`EmptyDataError` when there is nothing at all); arguments the caller chose badly (a window below 2,
``periods_per_year`` <= 0, an unknown option) raise :class:`SpecificationError`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from portfolio_engine.exceptions import DataError, EmptyDataError, SpecificationError
from portfolio_engine.risk._inputs import aligned_series

#: Trading days per year used to annualise daily figures unless told otherwise.
PERIODS_PER_YEAR = 252

#: A standard deviation (or variance) at or below this is treated as zero: the ratio over it is NaN. Float round-off
#: on a constant series of returns ~1e-3 leaves ~1e-19, real series sit many orders of magnitude above.
ZERO_SCALE = 1e-14


def check_periods_per_year(periods_per_year: float) -> float:
    """``periods_per_year`` as a positive float.

    Raises
    ------
    SpecificationError
        Not a finite number > 0.
    """
    try:
        value = float(periods_per_year)
    except (TypeError, ValueError):
        value = float("nan")
    if not (math.isfinite(value) and value > 0):
        raise SpecificationError(
            f"periods_per_year must be a number > 0; got {periods_per_year!r}.",
            hint="Use 252 for daily returns, 52 for weekly, 12 for monthly.",
        )
    return value


def check_ddof(ddof: int) -> int:
    """``ddof`` as 0 or 1.

    Raises
    ------
    SpecificationError
        Anything else.
    """
    if ddof not in (0, 1) or isinstance(ddof, bool):
        raise SpecificationError(f"ddof must be 0 or 1; got {ddof!r}.", hint="Use 1 (sample) or 0 (population).")
    return int(ddof)


def check_series(returns: pd.Series, *, name: str = "returns", min_observations: int = 2) -> np.ndarray:
    """Validate a return series and give its values as float64.

    Parameters
    ----------
    returns : Series of shape (n_observations,)
        Simple returns per period, in date order, each > -1.
    name : str, default "returns"
    min_observations : int, default 2

    Returns
    -------
    ndarray of shape (n_observations,)

    Raises
    ------
    DataError
        Not a Series, non-numeric, NaN or infinite values, a return <= -1, an unsorted or duplicated index, or fewer
        than ``min_observations`` values (:class:`EmptyDataError` when empty).
    """
    if not isinstance(returns, pd.Series):
        raise DataError(
            f"{name} must be a pandas Series of returns indexed by date; got {type(returns).__name__}.",
            hint="Pass one column, e.g. frame['strategy'], or pd.Series(values, index=dates).",
        )
    if len(returns) == 0:
        raise EmptyDataError(f"{name} is empty.", hint="Pass at least one period of returns.")
    try:
        values = returns.to_numpy(dtype="float64", copy=True)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name} holds non-numeric values ({exc}).", hint="Convert it to float returns.") from exc
    bad = ~np.isfinite(values)
    if bad.any():
        raise DataError(
            f"{name} has {int(bad.sum())} NaN or infinite value(s) (first at {returns.index[int(np.argmax(bad))]!r}).",
            hint="Drop the missing dates (returns.dropna()) or fill them deliberately before computing metrics.",
        )
    if (values <= -1.0).any():
        raise DataError(
            f"{name} has a return <= -1 ({float(values.min())!r}): wealth would be zero or negative.",
            hint="Pass simple returns as fractions (0.01 for 1%), not log returns or percentages.",
        )
    if returns.index.has_duplicates or not returns.index.is_monotonic_increasing:
        raise DataError(
            f"{name}'s index is not strictly increasing (duplicated or unsorted dates).",
            hint="Sort and de-duplicate it: returns[~returns.index.duplicated()].sort_index().",
        )
    if values.size < min_observations:
        raise DataError(
            f"{name} has {values.size} observation(s); this metric needs at least {min_observations}.",
            hint="Use a longer history or a shorter window.",
        )
    return values


def aligned(series: pd.Series, index: pd.Index, *, name: str) -> np.ndarray:
    """``series`` on the dates of ``index`` (every one must be there, with a finite value).

    Raises
    ------
    DataError
        Not a Series, or a date of ``index`` missing or NaN in ``series`` (the first one and the count are named).
    """
    return aligned_series(series, index, name=name, error=DataError)


def check_window(window: int, n_observations: int) -> int:
    """A rolling window length: an integer in ``[2, n_observations]``.

    Raises
    ------
    SpecificationError
        Not an integer >= 2.
    DataError
        Longer than the series.
    """
    if isinstance(window, bool) or not isinstance(window, int | np.integer) or window < 2:
        raise SpecificationError(
            f"window must be an integer >= 2 (periods); got {window!r}.", hint="Use e.g. window=126 (six months)."
        )
    if window > n_observations:
        raise DataError(
            f"window={window} is longer than the {n_observations} observations given.",
            hint="Use a shorter window or a longer history.",
        )
    return int(window)


def per_period_rate(annual: float | np.ndarray, periods_per_year: float) -> float | np.ndarray:
    """Geometric de-annualisation ``(1 + y) ** (1 / periods_per_year) - 1``."""
    return np.power(1.0 + np.asarray(annual, dtype="float64"), 1.0 / periods_per_year) - 1.0


def periodic_risk_free(
    risk_free: float | pd.Series | None, index: pd.Index, *, periods_per_year: float = PERIODS_PER_YEAR
) -> np.ndarray:
    """The risk-free return of each period of ``index``.

    Parameters
    ----------
    risk_free : float, Series or None
        ``None``: zero. A float: a constant ANNUAL rate in decimal (0.02 for 2%). A Series: ANNUAL yields in decimal
        indexed by date (e.g. ``load_treasury_curve()["3month"]``), taken on each return date with the last yield
        published on or before it (forward fill over holidays and gaps: a quote stays in force until the next one).
        Annual rates become per-period returns by ``(1 + y) ** (1 / periods_per_year) - 1``.
    index : Index of shape (n_observations,)
        The return dates.
    periods_per_year : float, default 252

    Returns
    -------
    ndarray of shape (n_observations,)

    Raises
    ------
    DataError
        A yield series without a value on or before some return date, non-finite values, or a yield outside
        ``(-1, 1)`` (a percentage passed as a decimal).
    """
    periods_per_year = check_periods_per_year(periods_per_year)
    if risk_free is None:
        return np.zeros(len(index))
    if isinstance(risk_free, pd.Series):
        clean = risk_free.dropna().sort_index()
        if clean.index.has_duplicates:
            raise DataError("The risk-free yield series has duplicated dates.", hint="De-duplicate it.")
        try:
            values = clean.reindex(clean.index.union(index)).ffill().reindex(index).to_numpy(dtype="float64")
        except (TypeError, ValueError) as exc:
            raise DataError(
                f"The risk-free series cannot be aligned to the returns' dates ({exc}).", hint="Index it by date."
            ) from exc
        if not np.isfinite(values).all():
            missing = ~np.isfinite(values)
            raise DataError(
                f"The risk-free series has no yield on or before {int(missing.sum())} return date(s) "
                f"(first {index[int(np.argmax(missing))]!r}).",
                hint="Use a yield series that starts on or before the first return date.",
            )
    else:
        try:
            values = np.full(len(index), float(risk_free))
        except (TypeError, ValueError):
            values = np.full(len(index), np.nan)
        if not np.isfinite(values).all():
            raise DataError(f"risk_free must be a finite annual rate; got {risk_free!r}.", hint="E.g. 0.02 for 2%.")
    if ((values <= -1.0) | (values >= 1.0)).any():
        raise DataError(
            f"Risk-free yields must be annual decimals in (-1, 1); got values up to {float(np.abs(values).max())!r}.",
            hint="Divide percentages by 100 (5.2 -> 0.052).",
        )
    return np.asarray(per_period_rate(values, periods_per_year), dtype="float64")


def safe_ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, or NaN when the denominator is (numerically) zero."""
    return float(numerator / denominator) if abs(denominator) > ZERO_SCALE else float("nan")
