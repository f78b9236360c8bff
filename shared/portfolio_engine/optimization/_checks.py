"""Input checks shared by the whole package: returns tables, aligned series, covariance matrices, EWMA decay.

One place for them, so that every method rejects the same bad input with the same typed error and message.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from portfolio_engine.exceptions import DataError, SpecificationError

#: Largest ``|cov - cov'|`` accepted, relative to the largest entry (round-off of a covariance computed in float64).
SYMMETRY_TOLERANCE = 1e-10


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


def check_positive(value: float, name: str) -> float:
    """``value`` as a float if it is a finite number > 0.

    Raises
    ------
    SpecificationError
        Not a finite positive number (the message gives the value).
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not (np.isfinite(number) and number > 0):
        raise SpecificationError(f"{name} must be a positive number; got {value!r}.", hint=f"Pass {name} > 0.")
    return number


def check_symmetric(
    values: np.ndarray | pd.DataFrame, *, name: str = "cov", labels: Sequence[object] | pd.Index | None = None
) -> np.ndarray:
    """A finite, square, symmetric (to round-off) matrix, returned exactly symmetrised as float64.

    Parameters
    ----------
    values : array-like of shape (n, n)
    name : str, default "cov"
        What the matrix is called in error messages.
    labels : sequence, optional
        Names of the rows (assets), to say where a value is bad.

    Raises
    ------
    SpecificationError
        Not numeric, not square, a NaN or infinite entry (the assets are named), or ``|cov - cov'|`` above
        :data:`SYMMETRY_TOLERANCE` times the largest entry (the worst pair is named).
    """
    try:
        matrix = np.array(values, dtype="float64")
    except (TypeError, ValueError) as exc:
        raise SpecificationError(f"{name} must be a numeric matrix ({exc}).", hint="Pass a covariance matrix.") from exc
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise SpecificationError(f"{name} must be a square matrix; got shape {matrix.shape}.", hint="Pass n x n.")
    names = [str(a) for a in labels] if labels is not None else [str(i) for i in range(matrix.shape[0])]
    bad = ~np.isfinite(matrix).all(axis=1)
    if bad.any():
        raise SpecificationError(
            f"{name} holds NaN or infinite values in the rows of {[n for n, b in zip(names, bad, strict=True) if b]}.",
            hint="Estimate it on returns without gaps (returns.dropna()), or drop those assets.",
        )
    if matrix.size:
        gap = np.abs(matrix - matrix.T)
        scale = max(float(np.abs(matrix).max()), 1e-300)
        if float(gap.max()) > SYMMETRY_TOLERANCE * scale:
            i, j = np.unravel_index(int(np.argmax(gap)), gap.shape)
            raise SpecificationError(
                f"{name} is not symmetric: {name}[{names[i]!r}, {names[j]!r}] = {matrix[i, j]:.6g} but "
                f"{name}[{names[j]!r}, {names[i]!r}] = {matrix[j, i]:.6g} (largest entry {scale:.3g}).",
                hint="Pass a covariance matrix; symmetrise a nearly symmetric one with (cov + cov.T) / 2.",
            )
    return (matrix + matrix.T) / 2.0


def check_covariance(cov: pd.DataFrame, *, name: str = "cov", positive_variances: bool = False) -> np.ndarray:
    """Validate a labelled covariance and return its values (float64, exactly symmetric).

    Parameters
    ----------
    cov : DataFrame of shape (n_assets, n_assets)
        Same unique asset labels, in the same order, on the index and the columns.
    name : str, default "cov"
    positive_variances : bool, default False
        Also require every variance to be > 0 (methods that divide by it).

    Raises
    ------
    SpecificationError
        Not a DataFrame, labels that differ between the axes or repeat, non-finite or asymmetric values
        (see :func:`check_symmetric`), or a variance <= 0 when ``positive_variances`` (the assets are named).
    """
    if not isinstance(cov, pd.DataFrame):
        raise SpecificationError(
            f"{name} must be a DataFrame indexed by asset on both axes; got {type(cov).__name__}.",
            hint="Pass Moments.cov, or pd.DataFrame(values, index=assets, columns=assets).",
        )
    if not cov.index.equals(cov.columns) or cov.index.has_duplicates:
        raise SpecificationError(
            f"{name} must be a square DataFrame with the same unique assets, in the same order, on its index and "
            f"columns; got index "
            f"{[str(a) for a in cov.index]} and columns {[str(a) for a in cov.columns]}.",
            hint="Reorder it: cov.loc[assets, assets].",
        )
    matrix = check_symmetric(cov.to_numpy(), name=name, labels=cov.index)
    if positive_variances:
        variances = np.diag(matrix)
        if not (variances > 0).all():
            bad = {str(a): float(v) for a, v in zip(cov.index, variances, strict=True) if not v > 0}
            raise SpecificationError(
                f"{name} has non-positive variances {bad}.",
                hint="Drop riskless assets (this method divides by each variance).",
            )
    return matrix
