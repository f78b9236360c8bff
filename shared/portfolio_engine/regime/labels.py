"""Regime labels from a volatility rule, and the next-period targets the classifiers learn.

Realized volatility at row t is the sample standard deviation (ddof=1) of the ``window`` returns
ending at t, annualised by ``sqrt(periods_per_year)``: it reads rows up to t only. A regime is the
volatility bucket: state k when ``thresholds[k-1] < vol <= thresholds[k]``, so 0 is the calmest and
``n_states - 1`` the most turbulent (the order the HMM uses).

Where the thresholds come from decides whether the labels look ahead, so it is always a choice:

* ``thresholds="expanding"`` (default): at each t the quantiles of the volatilities seen up to t.
  Point in time: no label depends on a later observation.
* ``thresholds="in_sample"``: quantiles of the whole series. Every label sees the whole sample (look-
  ahead by name); fine for labelling a training window, like an HMM's smoothed states.
* explicit numbers, e.g. ``VolatilityRegimeLabeler().fit(train).thresholds_``: estimated on a
  training window, then applied to later data without look-ahead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from portfolio_engine.exceptions import ConfigurationError, DataError, InsufficientDataError

LABEL_DTYPE = "Int64"


def _as_series(returns: Any) -> pd.Series:
    """One return series from a Series, a one-column DataFrame or a 1-D array (NaN kept; inf refused)."""
    if isinstance(returns, pd.DataFrame):
        if returns.shape[1] != 1:
            raise DataError(
                f"Volatility labels need one return series; got a frame with {returns.shape[1]} columns.",
                hint="Pass the market (index) return column, e.g. features['logret_1d'].",
            )
        returns = returns.iloc[:, 0]
    if isinstance(returns, pd.Series):
        series = returns.astype("float64")
    else:
        values = np.asarray(returns, dtype="float64")
        if values.ndim != 1:
            raise DataError(
                f"Volatility labels need a 1-D return series; got shape {values.shape}.",
                hint="Pass one column of returns.",
            )
        series = pd.Series(values)
    if np.isinf(series.to_numpy()).any():
        raise DataError(
            "The return series holds infinite values.", hint="Check the prices behind it (a zero or negative price)."
        )
    return series


def _check_params(window: int, n_states: int, quantiles: Sequence[float] | None) -> np.ndarray:
    """Validate the rule's parameters; return the quantile levels of the n_states - 1 thresholds."""
    if int(window) != window or window < 2:
        raise ConfigurationError(f"window must be an integer >= 2; got {window!r}.", hint="Use e.g. 21 (a month).")
    if int(n_states) != n_states or n_states < 2:
        raise ConfigurationError(f"n_states must be an integer >= 2; got {n_states!r}.", hint="Use 2 or 3.")
    if quantiles is None:
        return np.arange(1, n_states) / n_states
    levels = np.asarray(quantiles, dtype="float64")
    if levels.shape != (n_states - 1,) or not np.all((levels > 0) & (levels < 1)) or np.any(np.diff(levels) <= 0):
        raise ConfigurationError(
            f"quantiles must be {n_states - 1} increasing levels in (0, 1) for {n_states} states; got {quantiles!r}.",
            hint="E.g. (0.8,) for a calm state 80% of the time and a turbulent one.",
        )
    return levels


def _check_thresholds(thresholds: Any, n_states: int) -> np.ndarray:
    values = np.asarray(thresholds, dtype="float64")
    if values.shape != (n_states - 1,) or not np.all(np.isfinite(values)) or np.any(np.diff(values) <= 0):
        raise ConfigurationError(
            f"thresholds must be {n_states - 1} finite increasing volatilities for {n_states} states; "
            f"got {thresholds!r}.",
            hint="Use thresholds='expanding', 'in_sample', or VolatilityRegimeLabeler().fit(train).thresholds_.",
        )
    return values


def realized_volatility(returns: Any, *, window: int = 21, periods_per_year: int = 252) -> pd.Series:
    """Trailing realized volatility: std (ddof=1) of the last ``window`` returns x sqrt(periods_per_year).

    Parameters
    ----------
    returns : Series, one-column DataFrame or array of shape (n_observations,)
    window : int, default 21
    periods_per_year : int, default 252

    Returns
    -------
    Series of shape (n_observations,)
        NaN for the first ``window - 1`` rows and for windows holding a NaN return.

    Raises
    ------
    DataError
        If ``returns`` is not one series or holds infinite values.
    """
    series = _as_series(returns)
    _check_params(window, 2, None)
    return series.rolling(window, min_periods=window).std(ddof=1) * np.sqrt(periods_per_year)


def _bucket(vol: np.ndarray, thresholds: np.ndarray) -> Any:
    """State k for ``thresholds[..., k-1] < vol <= thresholds[..., k]``; NA where vol or a threshold is NaN."""
    thresholds = np.broadcast_to(thresholds, (len(vol), thresholds.shape[-1]))
    counts = (vol[:, None] > thresholds).sum(axis=1)
    missing = np.isnan(vol) | np.isnan(thresholds).any(axis=1)
    out: Any = pd.array(counts, dtype=LABEL_DTYPE)
    out[missing] = pd.NA
    return out


def volatility_regime_labels(
    returns: Any,
    *,
    window: int = 21,
    n_states: int = 2,
    thresholds: str | Sequence[float] = "expanding",
    quantiles: Sequence[float] | None = None,
    min_history: int = 252,
    periods_per_year: int = 252,
) -> pd.Series:
    """Label each observation by its trailing realized volatility bucket.

    Parameters
    ----------
    returns : Series, one-column DataFrame or array of shape (n_observations,)
        One return series (log or simple), oldest first.
    window : int, default 21
        Returns in the volatility window.
    n_states : int, default 2
    thresholds : {"expanding", "in_sample"} or sequence of float, default "expanding"
        ``"expanding"``: quantiles of the volatilities up to each t (point in time; the first
        ``min_history`` volatilities give no label). ``"in_sample"``: quantiles of the whole series
        (look-ahead: for labelling a training window only). Numbers: ``n_states - 1`` increasing
        annualised volatilities, e.g. from :class:`VolatilityRegimeLabeler` fitted on training data.
    quantiles : sequence of float, optional
        Levels of the ``n_states - 1`` thresholds; evenly spaced (``k / n_states``) by default.
    min_history : int, default 252
        Volatilities needed before the expanding thresholds are used.
    periods_per_year : int, default 252

    Returns
    -------
    Series of shape (n_observations,), dtype Int64
        Regime per observation, 0 = calmest; NA during the warm-up. Same index as ``returns``.

    Raises
    ------
    ConfigurationError
        If a parameter is out of range.
    DataError
        If ``returns`` is not one series or holds infinite values.
    """
    levels = _check_params(window, n_states, quantiles)
    vol = realized_volatility(returns, window=window, periods_per_year=periods_per_year)
    values = vol.to_numpy()
    if isinstance(thresholds, str) and thresholds == "expanding":
        if int(min_history) != min_history or min_history < 1:
            raise ConfigurationError(f"min_history must be an integer >= 1; got {min_history!r}.", hint="Use 252.")
        # pandas' expanding quantile interpolates linearly, as numpy.quantile's default does.
        expanding = vol.expanding(min_periods=min_history)
        cuts = np.column_stack([expanding.quantile(float(q)).to_numpy() for q in levels])
    elif isinstance(thresholds, str) and thresholds == "in_sample":
        finite = values[~np.isnan(values)]
        if finite.size == 0:
            raise InsufficientDataError(f"No volatility can be computed from {len(values)} returns (window {window}).")
        cuts = np.quantile(finite, levels)[None, :]
    elif isinstance(thresholds, str):
        raise ConfigurationError(
            f"thresholds must be 'expanding', 'in_sample' or numbers; got {thresholds!r}.",
            hint="Use 'expanding' for point-in-time labels.",
        )
    else:
        cuts = _check_thresholds(thresholds, n_states)[None, :]
    return pd.Series(_bucket(values, cuts), index=vol.index, name="regime")


class VolatilityRegimeLabeler(BaseEstimator):
    """Volatility-rule labels with thresholds learned on a training window and applied to any data.

    Parameters
    ----------
    window : int, default 21
        Returns in the trailing volatility window.
    n_states : int, default 2
    quantiles : sequence of float, optional
        Quantile levels of the ``n_states - 1`` thresholds; ``k / n_states`` by default.
    periods_per_year : int, default 252

    Attributes
    ----------
    thresholds_ : ndarray of shape (n_states - 1,)
        Annualised volatilities separating the states, estimated on the data given to ``fit`` only.
    """

    def __init__(
        self,
        window: int = 21,
        n_states: int = 2,
        quantiles: Sequence[float] | None = None,
        periods_per_year: int = 252,
    ) -> None:
        self.window = window
        self.n_states = n_states
        self.quantiles = quantiles
        self.periods_per_year = periods_per_year

    def fit(self, returns: Any, y: Any = None) -> VolatilityRegimeLabeler:
        """Estimate the thresholds on ``returns`` (the training window).

        Parameters
        ----------
        returns : Series, one-column DataFrame or array of shape (n_observations,)
        y : ignored

        Returns
        -------
        self

        Raises
        ------
        ConfigurationError, DataError
            Bad parameters or returns.
        InsufficientDataError
            If no volatility window is complete.
        """
        levels = _check_params(self.window, self.n_states, self.quantiles)
        vol = realized_volatility(returns, window=self.window, periods_per_year=self.periods_per_year).to_numpy()
        finite = vol[~np.isnan(vol)]
        if finite.size < self.n_states:
            raise InsufficientDataError(
                f"{finite.size} complete volatility windows of {self.window} returns; "
                f"{self.n_states} states need at least {self.n_states}.",
            )
        self.thresholds_ = np.quantile(finite, levels)
        if np.any(np.diff(self.thresholds_) <= 0):
            raise InsufficientDataError(
                f"The volatility thresholds {self.thresholds_.tolist()} do not separate {self.n_states} states.",
                hint="Use fewer states or a longer training window.",
            )
        return self

    def transform(self, returns: Any) -> pd.Series:
        """Labels of ``returns`` with the fitted thresholds (NA during the volatility warm-up).

        Returns
        -------
        Series of shape (n_observations,), dtype Int64
        """
        check_is_fitted(self, "thresholds_")
        return volatility_regime_labels(
            returns,
            window=self.window,
            n_states=self.n_states,
            thresholds=self.thresholds_,
            periods_per_year=self.periods_per_year,
        )

    def fit_transform(self, returns: Any, y: Any = None) -> pd.Series:
        """Fit on ``returns`` and label them: in-sample labels of a training window."""
        return self.fit(returns).transform(returns)


def _check_horizon(horizon: int) -> int:
    if isinstance(horizon, bool) or int(horizon) != horizon or horizon < 0:
        raise ConfigurationError(
            f"horizon must be an integer >= 0; got {horizon!r}.", hint="Use 1 for the next period's regime."
        )
    return int(horizon)


def next_period_target(labels: Any, horizon: int = 1) -> pd.Series:
    """The label ``horizon`` rows ahead: ``target[t] = labels[t + horizon]``.

    Parameters
    ----------
    labels : Series or array of shape (n_observations,)
        Regime per observation (NA allowed).
    horizon : int, default 1

    Returns
    -------
    Series of shape (n_observations,), dtype Int64
        NA in the last ``horizon`` rows (their future is unknown). Same index as ``labels``.

    Raises
    ------
    ConfigurationError
        If ``horizon`` is not an integer >= 0.
    """
    horizon = _check_horizon(horizon)
    series = labels if isinstance(labels, pd.Series) else pd.Series(np.asarray(labels))
    target: pd.Series = series.astype(pd.Int64Dtype()).shift(-horizon)
    return target.rename("target")


def align_to_next_period(X: Any, labels: Any, horizon: int = 1) -> tuple[Any, np.ndarray]:
    """Pair features at t with the label at t + horizon, dropping rows without a target.

    Parameters
    ----------
    X : DataFrame or array of shape (n_observations, n_features)
    labels : Series or array of shape (n_observations,)
        Regime per observation, aligned with ``X`` by position.
    horizon : int, default 1

    Returns
    -------
    X_aligned : same type as ``X``, shape (n_kept, n_features)
        Rows t whose label at t + horizon is known (never the last ``horizon`` rows).
    y_aligned : ndarray of int, shape (n_kept,)

    Raises
    ------
    ConfigurationError
        If ``horizon`` is not an integer >= 0.
    DataError
        If ``X`` and ``labels`` differ in length.
    """
    horizon = _check_horizon(horizon)
    n_rows = len(X)
    if len(labels) != n_rows:
        raise DataError(
            f"X has {n_rows} rows and labels {len(labels)}.", hint="Pass one label per row of X, in the same order."
        )
    values = pd.Series(np.asarray(labels, dtype=object)).astype("Float64")
    target = values.shift(-horizon)
    keep = target.notna().to_numpy(dtype=bool)
    y = target[keep].to_numpy(dtype="float64").astype(np.int64)
    X_kept = X.iloc[keep] if isinstance(X, pd.DataFrame | pd.Series) else np.asarray(X)[keep]
    return X_kept, y
