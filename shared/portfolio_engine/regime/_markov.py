"""Markov-chain and Gaussian-emission arithmetic shared by the regime models (pure numpy/scipy).

References
----------
.. [1] Rabiner, L. R. (1989). "A tutorial on hidden Markov models and selected applications in
   speech recognition." Proceedings of the IEEE 77(2), 257-286 (the forward recursion).
.. [2] Hamilton, J. D. (1989). "A new approach to the economic analysis of nonstationary time series
   and the business cycle." Econometrica 57(2), 357-384 (filtered regime probabilities).
"""

from __future__ import annotations

import numpy as np
from scipy import linalg
from scipy.special import logsumexp

_LOG_2PI = float(np.log(2.0 * np.pi))


def stationary_distribution(transmat: np.ndarray) -> np.ndarray:
    """Long-run state distribution ``pi`` with ``pi @ transmat = pi`` and ``sum(pi) = 1``.

    Parameters
    ----------
    transmat : ndarray of shape (n_states, n_states)
        Row-stochastic transition matrix.

    Returns
    -------
    ndarray of shape (n_states,)
        Solved as the least-squares solution of ``(transmat.T - I) pi = 0`` with ``1' pi = 1``.
    """
    n = transmat.shape[0]
    system = np.vstack([transmat.T - np.eye(n), np.ones((1, n))])
    rhs = np.zeros(n + 1)
    rhs[-1] = 1.0
    pi, *_ = np.linalg.lstsq(system, rhs, rcond=None)
    pi = np.clip(pi, 0.0, None)
    return np.asarray(pi / pi.sum())


def expected_durations(transmat: np.ndarray) -> np.ndarray:
    """Mean sojourn time of each state, ``1 / (1 - p_ii)`` periods (geometric durations).

    Parameters
    ----------
    transmat : ndarray of shape (n_states, n_states)
        Row-stochastic transition matrix.

    Returns
    -------
    ndarray of shape (n_states,)
        ``inf`` for an absorbing state.
    """
    stay = np.diag(transmat)
    with np.errstate(divide="ignore"):
        return np.asarray(np.where(stay < 1.0, 1.0 / (1.0 - stay), np.inf))


def gaussian_log_density(X: np.ndarray, means: np.ndarray, covariances: np.ndarray) -> np.ndarray:
    """Log density of each row of ``X`` under each of several multivariate normals.

    Parameters
    ----------
    X : ndarray of shape (n_obs, n_features)
        Points.
    means : ndarray of shape (n_components, n_features)
        Component means.
    covariances : ndarray of shape (n_components, n_features, n_features)
        Component covariances (positive definite).

    Returns
    -------
    ndarray of shape (n_obs, n_components)
        ``log N(x_t; mu_k, Sigma_k)``.
    """
    n_obs, n_features = X.shape
    out = np.empty((n_obs, means.shape[0]))
    for k in range(means.shape[0]):
        chol = linalg.cholesky(covariances[k], lower=True)
        z = linalg.solve_triangular(chol, (X - means[k]).T, lower=True)
        log_det = 2.0 * np.sum(np.log(np.diag(chol)))
        out[:, k] = -0.5 * (np.einsum("ij,ij->j", z, z) + log_det + n_features * _LOG_2PI)
    return out


def mixture_log_density(X: np.ndarray, weights: np.ndarray, means: np.ndarray, covariances: np.ndarray) -> np.ndarray:
    """Log density of each row of ``X`` under each state's Gaussian mixture.

    Parameters
    ----------
    X : ndarray of shape (n_obs, n_features)
        Points.
    weights : ndarray of shape (n_states, n_mix)
        Mixture weights per state (rows sum to 1).
    means : ndarray of shape (n_states, n_mix, n_features)
        Component means.
    covariances : ndarray of shape (n_states, n_mix, n_features, n_features)
        Component covariances.

    Returns
    -------
    ndarray of shape (n_obs, n_states)
        ``log sum_m w_km N(x_t; mu_km, Sigma_km)``.
    """
    n_states = weights.shape[0]
    out = np.empty((X.shape[0], n_states))
    with np.errstate(divide="ignore"):
        log_weights = np.log(weights)
    for k in range(n_states):
        out[:, k] = logsumexp(gaussian_log_density(X, means[k], covariances[k]) + log_weights[k], axis=1)
    return out


def forward_filter(log_emissions: np.ndarray, startprob: np.ndarray, transmat: np.ndarray) -> tuple[np.ndarray, float]:
    """Filtered state probabilities by the forward algorithm, and the log-likelihood of the sequence.

    Emission likelihoods stay in log space (they underflow in linear space for long or
    high-dimensional data); the state probabilities are normalised at every step, so they need not.

    Parameters
    ----------
    log_emissions : ndarray of shape (n_obs, n_states)
        ``log p(x_t | s_t = k)``.
    startprob : ndarray of shape (n_states,)
        ``P(s_0 = k)``.
    transmat : ndarray of shape (n_states, n_states)
        ``P(s_{t+1} = j | s_t = i)``.

    Returns
    -------
    filtered : ndarray of shape (n_obs, n_states)
        ``P(s_t = k | x_0..x_t)``; row ``t`` uses rows ``0..t`` only.
    log_likelihood : float
        ``log p(x_0..x_{n-1})``.

    References
    ----------
    .. [1] Rabiner (1989), section III.A; Hamilton (1989), section 4.
    """
    n_obs, n_states = log_emissions.shape
    filtered = np.empty((n_obs, n_states))
    log_likelihood = 0.0
    predicted = np.asarray(startprob, dtype=np.float64)
    with np.errstate(divide="ignore"):
        for t in range(n_obs):
            joint = np.log(predicted) + log_emissions[t]
            peak = joint.max()
            weights = np.exp(joint - peak)
            total = weights.sum()
            filtered[t] = weights / total
            log_likelihood += peak + np.log(total)
            predicted = filtered[t] @ transmat
    return filtered, float(log_likelihood)
