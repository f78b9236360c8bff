"""The contract every regime model follows, the checks on its features, and the summary it reports.

A regime model is a scikit-learn estimator (``fit`` / ``predict`` / ``predict_proba``, ``clone``,
``get_params``) whose probabilities are *filtered*: row ``t`` of ``predict_proba(X)`` uses rows
``0..t`` of ``X`` only, so it can drive decisions at time ``t``. Anything that looks at later data
(smoothed probabilities, Viterbi paths) is named so and is for analysis only.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from portfolio_engine.exceptions import (
    DegenerateDataError,
    InsufficientDataError,
    NonFiniteFeaturesError,
    SchemaError,
)

#: A column whose range is below this fraction of its largest magnitude counts as constant.
CONSTANT_RELATIVE_TOLERANCE = 1e-12


def default_state_names(n_states: int) -> tuple[str, ...]:
    """Names of states ordered from calmest to most turbulent.

    Parameters
    ----------
    n_states : int
        Number of states.

    Returns
    -------
    tuple of str, length n_states
        ``("calm", "turbulent")`` for 2 states, ``("calm", "normal", "turbulent")`` for 3,
        otherwise ``("state_0", ..., "state_{n-1}")``.
    """
    if n_states == 2:
        return ("calm", "turbulent")
    if n_states == 3:
        return ("calm", "normal", "turbulent")
    return tuple(f"state_{k}" for k in range(n_states))


def feature_names_of(X: Any) -> list[str] | None:
    """Column names of a DataFrame whose columns are all strings, else ``None`` (scikit-learn's rule)."""
    columns = getattr(X, "columns", None)
    if columns is None:
        return None
    names = list(columns)
    return [str(n) for n in names] if names and all(isinstance(n, str) for n in names) else None


def _as_2d_float(X: Any) -> np.ndarray:
    try:
        values = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SchemaError(
            f"Features must be numeric; could not convert input of type {type(X).__name__} to float: {exc}.",
            hint="Pass a numeric array or DataFrame of shape (n_observations, n_features).",
        ) from exc
    if values.ndim != 2:
        raise SchemaError(
            f"Features must be 2-D of shape (n_observations, n_features); received an array with shape {values.shape}.",
            hint="Reshape a single series with X.reshape(-1, 1) (or pass a one-column DataFrame).",
        )
    return values


def _column_labels(X: Any, n_features: int) -> list[str]:
    names = feature_names_of(X)
    return names if names is not None else [f"column {j}" for j in range(n_features)]


def check_finite(X: Any, values: np.ndarray) -> None:
    """Raise :class:`NonFiniteFeaturesError` naming the columns and the number of rows with NaN or inf.

    Parameters
    ----------
    X : array-like
        The caller's input (used only for its column names).
    values : ndarray of shape (n_observations, n_features)
        ``X`` as floats.

    Raises
    ------
    NonFiniteFeaturesError
        If any value is NaN or infinite.
    """
    bad = ~np.isfinite(values)
    if not bad.any():
        return
    labels = _column_labels(X, values.shape[1])
    bad_columns = [labels[j] for j in np.flatnonzero(bad.any(axis=0))]
    bad_rows = np.flatnonzero(bad.any(axis=1))
    raise NonFiniteFeaturesError(
        f"Features hold NaN or infinite values in {bad_rows.size} of {values.shape[0]} rows "
        f"(first at row {int(bad_rows[0])}), in columns {bad_columns}."
    )


def check_features(X: Any, *, min_obs: int) -> np.ndarray:
    """Validate a feature matrix for fitting a regime model and return it as floats.

    Parameters
    ----------
    X : array-like or DataFrame of shape (n_observations, n_features)
        Features, one row per period, oldest first.
    min_obs : int
        Fewest rows the model needs.

    Returns
    -------
    ndarray of float64, shape (n_observations, n_features)
        A copy of ``X``.

    Raises
    ------
    SchemaError
        If ``X`` is not numeric or not 2-D.
    NonFiniteFeaturesError
        If any value is NaN or infinite (names the columns and counts the rows).
    InsufficientDataError
        If ``X`` has fewer than ``min_obs`` rows (names both numbers).
    DegenerateDataError
        If a column is constant (names it).
    """
    values = _as_2d_float(X).copy()
    n_obs, n_features = values.shape
    if n_features == 0:
        raise SchemaError(
            f"Features have no columns (received shape {values.shape}).",
            hint="Pass at least one feature column.",
        )
    check_finite(X, values)
    if n_obs < min_obs:
        raise InsufficientDataError(
            f"Received {n_obs} observations; at least {min_obs} are needed.",
        )
    spread = np.ptp(values, axis=0)
    magnitude = np.max(np.abs(values), axis=0)
    constant = spread <= CONSTANT_RELATIVE_TOLERANCE * magnitude
    if constant.any():
        labels = _column_labels(X, n_features)
        j = int(np.flatnonzero(constant)[0])
        raise DegenerateDataError(
            f"Feature {labels[j]!r} is constant (every one of its {n_obs} values is {values[0, j]:.6g}); "
            f"constant columns: {[labels[k] for k in np.flatnonzero(constant)]}."
        )
    return values


@dataclass(frozen=True, eq=False)
class RegimeSummary:
    """What a fitted regime model learned, in the caller's units.

    Attributes
    ----------
    state_names : tuple of str, length n_states
        Calmest first.
    startprob : ndarray of shape (n_states,)
        Probability of each state at the first observation.
    transmat : ndarray of shape (n_states, n_states)
        ``transmat[i, j] = P(s_{t+1} = j | s_t = i)``.
    stationary : ndarray of shape (n_states,)
        Long-run share of time in each state (left eigenvector of ``transmat`` for eigenvalue 1).
    expected_durations : ndarray of shape (n_states,)
        Mean number of consecutive periods spent in a state once entered, ``1 / (1 - p_ii)``.
    means : ndarray of shape (n_states, n_features)
        Per-state mean of the features.
    covariances : ndarray of shape (n_states, n_features, n_features)
        Per-state covariance of the features (full matrices whatever the model's covariance type).
    log_likelihood : float
        Log-likelihood of the training data, in the caller's units.
    bic, aic : float
        ``-2 log L + k log n`` and ``-2 log L + 2 k``; lower is better.
    n_parameters : int
        ``k``, the number of free parameters.
    n_obs : int
        ``n``, the number of training observations.
    feature_names : tuple of str or None
        Column names when the model was fitted on a DataFrame.
    """

    state_names: tuple[str, ...]
    startprob: np.ndarray
    transmat: np.ndarray
    stationary: np.ndarray
    expected_durations: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    log_likelihood: float
    bic: float
    aic: float
    n_parameters: int
    n_obs: int
    feature_names: tuple[str, ...] | None = field(default=None)

    def __post_init__(self) -> None:
        # Read-only copies, so a summary cannot be changed behind its (frozen) back.
        for name in ("startprob", "transmat", "stationary", "expected_durations", "means", "covariances"):
            array = np.array(getattr(self, name), dtype=np.float64, copy=True)
            array.setflags(write=False)
            object.__setattr__(self, name, array)

    @property
    def n_states(self) -> int:
        """Number of states."""
        return len(self.state_names)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view: lists of floats, ``None`` for infinite durations (a state never left)."""

        def floats(array: np.ndarray) -> Any:
            return [None if not math.isfinite(v) else float(v) for v in array] if array.ndim == 1 else array.tolist()

        return {
            "state_names": list(self.state_names),
            "feature_names": None if self.feature_names is None else list(self.feature_names),
            "startprob": floats(self.startprob),
            "transmat": self.transmat.tolist(),
            "stationary": floats(self.stationary),
            "expected_durations": floats(self.expected_durations),
            "means": self.means.tolist(),
            "covariances": self.covariances.tolist(),
            "log_likelihood": float(self.log_likelihood),
            "bic": float(self.bic),
            "aic": float(self.aic),
            "n_parameters": int(self.n_parameters),
            "n_obs": int(self.n_obs),
        }


class BaseRegimeModel(BaseEstimator, ABC):
    """Base class of regime models: filtered probabilities in, most probable state out.

    Subclasses implement ``fit`` (calling :meth:`_validate_fit_features`) and :meth:`predict_proba`,
    and set ``n_states_`` and ``state_names_`` (calmest first).

    Attributes
    ----------
    n_states_ : int
        Number of states of the fitted model.
    state_names_ : tuple of str
        One name per state, calmest first.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of str
        Column names seen in ``fit``, when ``X`` was a DataFrame with string column names.
    """

    n_states_: int
    state_names_: tuple[str, ...]
    n_features_in_: int
    feature_names_in_: np.ndarray

    def _validate_fit_features(self, X: Any, *, min_obs: int) -> np.ndarray:
        """Check ``X`` for fitting (see :func:`check_features`) and remember its width and column names."""
        values = check_features(X, min_obs=min_obs)
        self.n_features_in_ = values.shape[1]
        names = feature_names_of(X)
        if names is not None:
            self.feature_names_in_ = np.asarray(names, dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        return values

    def _validate_predict_features(self, X: Any) -> np.ndarray:
        """Check ``X`` against what ``fit`` saw: same width, same column names, finite values.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the model is not fitted.
        SchemaError
            If the number or names of the columns differ from those seen in ``fit``.
        NonFiniteFeaturesError
            If any value is NaN or infinite.
        InsufficientDataError
            If ``X`` has no rows.
        """
        check_is_fitted(self, "n_states_")
        values = _as_2d_float(X)
        if values.shape[1] != self.n_features_in_:
            raise SchemaError(
                f"Features have {values.shape[1]} columns; the model was fitted on {self.n_features_in_}.",
                hint="Pass the same feature columns, in the same order, as in fit.",
            )
        names = feature_names_of(X)
        fitted = getattr(self, "feature_names_in_", None)
        if names is not None and fitted is not None and list(fitted) != names:
            raise SchemaError(
                f"Feature names {names} differ from those seen in fit {list(fitted)}.",
                hint="Select and order the columns as in fit.",
            )
        if values.shape[0] == 0:
            raise InsufficientDataError("Received 0 observations; at least 1 is needed.", hint="Pass at least one row.")
        check_finite(X, values)
        return values

    @abstractmethod
    def predict_proba(self, X: Any) -> np.ndarray:
        """Filtered state probabilities ``P(s_t | x_0..x_t)``.

        Parameters
        ----------
        X : array-like of shape (n_observations, n_features)
            Features, oldest first.

        Returns
        -------
        ndarray of shape (n_observations, n_states)
            Row ``t`` depends on rows ``0..t`` of ``X`` only; rows sum to 1.
        """

    def predict(self, X: Any) -> np.ndarray:
        """Most probable state at each time, from the filtered probabilities.

        Parameters
        ----------
        X : array-like of shape (n_observations, n_features)
            Features, oldest first.

        Returns
        -------
        ndarray of int, shape (n_observations,)
            State index (0 = calmest) at each time, using data up to that time only.
        """
        return np.asarray(np.argmax(self.predict_proba(X), axis=1), dtype=np.int64)

    def state_name_of(self, labels: Sequence[int] | np.ndarray) -> np.ndarray:
        """Map state indices to names.

        Parameters
        ----------
        labels : sequence of int, shape (n,)
            State indices.

        Returns
        -------
        ndarray of str, shape (n,)
            The names in ``state_names_``.
        """
        check_is_fitted(self, "n_states_")
        return np.asarray(self.state_names_, dtype=object)[np.asarray(labels, dtype=np.int64)]
