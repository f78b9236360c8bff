"""Synthetic data with known regimes: a Markov chain of states, Gaussian features in each.

Used to check that regime models recover states, durations and labels they were not told.
The presets are daily returns *in percent* of an equity index and a government bond index,
with states ordered calm -> turbulent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from portfolio_engine.exceptions import ConfigurationError
from portfolio_engine.regime._base import default_state_names
from portfolio_engine.regime._markov import expected_durations, stationary_distribution

_HINT = "Pass a row-stochastic transmat (K, K), means (K, d) and positive-definite covariances (K, d, d)."


@dataclass(frozen=True, eq=False)
class SyntheticRegimes:
    """A simulated sample and the parameters that generated it.

    Attributes
    ----------
    X : ndarray of shape (n_obs, n_features)
        Features.
    states : ndarray of int, shape (n_obs,)
        True state at each time.
    startprob : ndarray of shape (n_states,)
        Distribution of the first state.
    transmat : ndarray of shape (n_states, n_states)
        ``P(s_{t+1} = j | s_t = i)``.
    means : ndarray of shape (n_states, n_features)
        Per-state means.
    covariances : ndarray of shape (n_states, n_features, n_features)
        Per-state covariances.
    state_names : tuple of str
        One name per state.
    feature_names : tuple of str
        One name per feature.
    """

    X: np.ndarray
    states: np.ndarray
    startprob: np.ndarray
    transmat: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    state_names: tuple[str, ...]
    feature_names: tuple[str, ...]

    @property
    def n_states(self) -> int:
        """Number of states."""
        return int(self.transmat.shape[0])

    @property
    def expected_durations(self) -> np.ndarray:
        """True mean sojourn times ``1 / (1 - p_ii)``, shape (n_states,)."""
        return expected_durations(self.transmat)

    def frame(self, start: str = "2000-01-03") -> pd.DataFrame:
        """The features as a DataFrame on business days from ``start``, columns ``feature_names``."""
        index = pd.bdate_range(start, periods=self.X.shape[0], name="date")
        return pd.DataFrame(self.X, index=index, columns=list(self.feature_names))


def _check_parameters(
    transmat: np.ndarray, means: np.ndarray, covariances: np.ndarray, startprob: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Validate shapes and values; return the start distribution and the Cholesky factors of the covariances."""
    k = transmat.shape[0] if transmat.ndim == 2 else -1
    if transmat.ndim != 2 or transmat.shape != (k, k) or k < 1:
        raise ConfigurationError(f"transmat must be square; received shape {transmat.shape}.", hint=_HINT)
    if np.any(transmat < 0) or not np.allclose(transmat.sum(axis=1), 1.0):
        raise ConfigurationError(
            f"transmat rows must be probabilities summing to 1; received row sums {transmat.sum(axis=1)}.", hint=_HINT
        )
    if means.ndim != 2 or means.shape[0] != k:
        raise ConfigurationError(f"means must have shape ({k}, n_features); received {means.shape}.", hint=_HINT)
    d = means.shape[1]
    if covariances.shape != (k, d, d):
        raise ConfigurationError(
            f"covariances must have shape ({k}, {d}, {d}); received {covariances.shape}.", hint=_HINT
        )
    startprob = stationary_distribution(transmat) if startprob is None else startprob
    if startprob.shape != (k,) or np.any(startprob < 0) or not np.isclose(startprob.sum(), 1.0):
        raise ConfigurationError(f"startprob must be {k} probabilities summing to 1; received {startprob}.", hint=_HINT)
    chol = np.empty_like(covariances)
    for s in range(k):
        if not np.allclose(covariances[s], covariances[s].T):
            raise ConfigurationError(f"covariances[{s}] is not symmetric: {covariances[s].tolist()}.", hint=_HINT)
        try:
            chol[s] = np.linalg.cholesky(covariances[s])
        except np.linalg.LinAlgError as exc:
            raise ConfigurationError(
                f"covariances[{s}] is not positive definite: {covariances[s].tolist()}.", hint=_HINT
            ) from exc
    return startprob, chol


def simulate_regimes(
    n_obs: int,
    transmat: ArrayLike,
    means: ArrayLike,
    covariances: ArrayLike,
    *,
    startprob: ArrayLike | None = None,
    rng: np.random.Generator,
    state_names: Sequence[str] | None = None,
    feature_names: Sequence[str] | None = None,
) -> SyntheticRegimes:
    """Simulate a Gaussian hidden Markov model.

    Parameters
    ----------
    n_obs : int
        Number of periods (>= 1).
    transmat : array-like of shape (n_states, n_states)
        Row-stochastic transition matrix.
    means : array-like of shape (n_states, n_features)
        Per-state means.
    covariances : array-like of shape (n_states, n_features, n_features)
        Per-state covariances (symmetric positive definite).
    startprob : array-like of shape (n_states,), optional
        Distribution of the first state; the chain's stationary distribution by default.
    rng : numpy.random.Generator
        Source of randomness.
    state_names, feature_names : sequence of str, optional
        Labels; ``default_state_names`` and ``x0, x1, ...`` by default.

    Returns
    -------
    SyntheticRegimes
        The sample (``X``, ``states``) and its parameters.

    Raises
    ------
    ConfigurationError
        If ``n_obs < 1`` or a parameter has the wrong shape, is not a probability, or a covariance is
        not symmetric positive definite.
    """
    P = np.asarray(transmat, dtype=np.float64)
    mu = np.asarray(means, dtype=np.float64)
    cov = np.asarray(covariances, dtype=np.float64)
    if not isinstance(n_obs, int | np.integer) or n_obs < 1:
        raise ConfigurationError(f"n_obs must be an int >= 1; received {n_obs!r}.", hint="Ask for at least 1 period.")
    pi0, chol = _check_parameters(P, mu, cov, None if startprob is None else np.asarray(startprob, dtype=np.float64))
    k, d = mu.shape

    # Draw everything up front, so the sample depends on the generator's state only.
    uniforms = rng.random(n_obs)
    shocks = rng.standard_normal((n_obs, d))
    cumulative = np.cumsum(P, axis=1)
    cumulative[:, -1] = 1.0  # guard the last bin against rounding
    states = np.empty(n_obs, dtype=np.int64)
    states[0] = min(int(np.searchsorted(np.cumsum(pi0), uniforms[0], side="right")), k - 1)
    for t in range(1, n_obs):
        states[t] = np.searchsorted(cumulative[states[t - 1]], uniforms[t], side="right")
    X = mu[states] + np.einsum("tij,tj->ti", chol[states], shocks)

    names = tuple(state_names) if state_names is not None else default_state_names(k)
    columns = tuple(feature_names) if feature_names is not None else tuple(f"x{j}" for j in range(d))
    if len(names) != k or len(columns) != d:
        raise ConfigurationError(
            f"Received {len(names)} state names for {k} states and {len(columns)} feature names for {d} features.",
            hint="Pass one name per state and one per feature.",
        )
    return SyntheticRegimes(X, states, pi0, P, mu, cov, names, columns)


def _covariance(vols: Sequence[float], correlation: float) -> np.ndarray:
    v = np.asarray(vols, dtype=np.float64)
    corr = np.array([[1.0, correlation], [correlation, 1.0]])
    return np.asarray(corr * np.outer(v, v))


#: Daily returns in percent of (equity index, government bonds).
MARKET_FEATURES = ("equity", "bond")


def two_state_market(n_obs: int, rng: np.random.Generator) -> SyntheticRegimes:
    """Calm and turbulent markets, daily returns in percent of an equity and a bond index.

    Calm: equity +0.06 %/day with 0.7 % volatility (about 11 % a year), bonds 0.30 %, correlation
    -0.1; turbulent: equity -0.10 %/day with 2.0 % volatility (about 32 % a year), bonds 0.55 %,
    correlation -0.5 (flight to quality). Calm spells last 125 days on average, turbulent ones 40,
    so the chain spends about three quarters of the time calm. With the true parameters, filtered
    probabilities classify about 96 % of days correctly and smoothed ones about 98.5 %.

    Parameters
    ----------
    n_obs : int
        Number of days.
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    SyntheticRegimes
        Features ``("equity", "bond")``, states ``("calm", "turbulent")``.
    """
    return simulate_regimes(
        n_obs,
        transmat=[[0.992, 0.008], [0.025, 0.975]],
        means=[[0.06, 0.01], [-0.10, 0.03]],
        covariances=[_covariance([0.7, 0.30], -0.1), _covariance([2.0, 0.55], -0.5)],
        rng=rng,
        feature_names=MARKET_FEATURES,
    )


def three_state_market(n_obs: int, rng: np.random.Generator) -> SyntheticRegimes:
    """Calm, normal and turbulent markets, daily returns in percent of an equity and a bond index.

    Equity volatility 0.5 / 1.1 / 2.5 % a day (about 8 / 17 / 40 % a year) with means +0.07 / +0.02 /
    -0.15 %; bond volatility 0.2 / 0.4 / 0.7 %; stock-bond correlation -0.1 / -0.3 / -0.6. Mean
    durations 100, 50 and 33 days; turbulence is entered mostly from the normal state. With the true
    parameters, filtered probabilities classify about 93 % of days correctly and smoothed ones 97 %.

    Parameters
    ----------
    n_obs : int
        Number of days.
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    SyntheticRegimes
        Features ``("equity", "bond")``, states ``("calm", "normal", "turbulent")``.
    """
    return simulate_regimes(
        n_obs,
        transmat=[[0.990, 0.009, 0.001], [0.010, 0.980, 0.010], [0.003, 0.027, 0.970]],
        means=[[0.07, 0.01], [0.02, 0.015], [-0.15, 0.04]],
        covariances=[
            _covariance([0.5, 0.2], -0.1),
            _covariance([1.1, 0.4], -0.3),
            _covariance([2.5, 0.7], -0.6),
        ],
        rng=rng,
        feature_names=MARKET_FEATURES,
    )
