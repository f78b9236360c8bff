"""VaR and CVaR estimators on arrays: empirical (historical / Monte Carlo), Normal, Student-t, Cornish-Fisher.

Convention: ``L = -R`` is the loss, a fraction of portfolio value, and ``alpha`` the confidence level (0.95, 0.99).
``VaR_alpha`` is the alpha-quantile of ``L`` and ``CVaR_alpha`` the mean of ``L`` over its worst ``1 - alpha``
(expected shortfall). Both are positive for a loss.

Empirical estimates from ``n`` scenarios use a tail of ``k = n (1 - alpha)`` scenarios (k need not be whole):

* VaR, default quantile method ``"inverted_cdf"``: ``inf {l : F_n(l) >= alpha}``, the ``ceil(n alpha)``-th smallest
  loss, which is the ``(floor(k) + 1)``-th largest (100 scenarios at 0.95: the 6th largest loss). Any other
  ``numpy.quantile`` method may be named instead (``"lower"``, ``"higher"``, ``"linear"``, ...).
* CVaR: the ``floor(k)`` largest losses at full weight plus the next one at weight ``k - floor(k)``, over ``k``
  (Acerbi and Tasche, 2002). This equals ``VaR + E[(L - VaR)^+] / (1 - alpha)`` with the ``"inverted_cdf"`` VaR
  (Rockafellar and Uryasev, 2002) and the optimum of the CVaR LP in ``optimization.cvar``. 100 scenarios at 0.95:
  the mean of the 5 largest losses. It does not depend on the VaR quantile method.

``k`` is snapped to the nearest whole number when within 1e-9 of it: ``100 * (1 - 0.95)`` is 5, not 5.000000000000004.

References
----------
Acerbi, C. and Tasche, D. (2002), "On the coherence of expected shortfall", Journal of Banking & Finance 26(7).
Rockafellar, R. T. and Uryasev, S. (2002), "Conditional value-at-risk for general loss distributions", Journal of
Banking & Finance 26(7).
Zangari, P. (1996), "A VaR methodology for portfolios that include options", RiskMetrics Monitor Q1 (Cornish-Fisher).
Cornish, E. A. and Fisher, R. A. (1938), "Moments and cumulants in the specification of distributions", Revue de
l'Institut International de Statistique 5(4).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, stats

from portfolio_engine.exceptions import RiskError, RiskInputError

#: numpy.quantile methods accepted for the empirical VaR.
QUANTILE_METHODS: tuple[str, ...] = (
    "inverted_cdf",
    "averaged_inverted_cdf",
    "closest_observation",
    "interpolated_inverted_cdf",
    "hazen",
    "weibull",
    "linear",
    "median_unbiased",
    "normal_unbiased",
    "lower",
    "higher",
    "midpoint",
    "nearest",
)
#: Search range of the Student-t degrees of freedom fitted by maximum likelihood.
DOF_BOUNDS = (2.05, 1000.0)
_SNAP = 1e-9


def tail_size(n: int, level: float) -> float:
    """``n (1 - level)``: how many scenarios the tail holds, snapped to a whole number within 1e-9."""
    k = n - n * level  # n * level is exact for the usual levels; n * (1 - level) is not
    nearest = round(k)
    return float(nearest) if abs(k - nearest) < _SNAP * max(1.0, k) else k


def tail_weights(losses: np.ndarray, level: float) -> np.ndarray:
    """Weight of each scenario in the empirical CVaR (they sum to one): ``1/k`` on the ``floor(k)`` worst, the rest.

    Ties are broken by scenario order (a stable sort), so equal losses share the tail deterministically.

    Returns
    -------
    ndarray of shape (n_scenarios,)
    """
    n = losses.shape[0]
    k = tail_size(n, level)
    whole = min(math.floor(k), n - 1)
    order = np.argsort(-losses, kind="stable")
    weights = np.zeros(n)
    weights[order[:whole]] = 1.0
    weights[order[whole]] = k - whole
    return weights / k


def empirical_var_cvar(returns: np.ndarray, level: float, quantile_method: str = "inverted_cdf") -> tuple[float, float]:
    """VaR and CVaR of a sample of portfolio returns (losses are ``-returns``).

    Parameters
    ----------
    returns : ndarray of shape (n_scenarios,)
    level : float
        Confidence level in (0, 1).
    quantile_method : str, default "inverted_cdf"
        How VaR is read off the sample (see the module docstring and :data:`QUANTILE_METHODS`).

    Returns
    -------
    (var, cvar) : tuple of float

    Raises
    ------
    RiskInputError
        Unknown quantile method.
    RiskError
        Empty sample.
    """
    if quantile_method not in QUANTILE_METHODS:
        raise RiskInputError(
            f"Unknown quantile method {quantile_method!r}.", hint=f"Use one of {', '.join(QUANTILE_METHODS)}."
        )
    losses = -np.asarray(returns, dtype="float64")
    n = losses.shape[0]
    if n == 0:
        raise RiskError("The sample of returns is empty.", hint="Pass at least one scenario.")
    k = tail_size(n, level)
    whole = min(math.floor(k), n - 1)
    descending = np.sort(losses)[::-1]
    if quantile_method == "inverted_cdf":
        var = float(descending[whole])
    else:
        var = float(np.quantile(losses, level, method=quantile_method))  # type: ignore[call-overload]
    cvar = float((descending[:whole].sum() + (k - whole) * descending[whole]) / k)
    return var, cvar


def normal_var_cvar(mean: float, std: float, level: float) -> tuple[float, float]:
    """VaR and CVaR of ``L = -R`` for ``R ~ N(mean, std^2)``.

    ``VaR = -mean + std z`` and ``CVaR = -mean + std phi(z) / (1 - alpha)`` with ``z = Phi^{-1}(alpha)``.
    """
    z = float(stats.norm.ppf(level))
    return -mean + std * z, -mean + std * float(stats.norm.pdf(z)) / (1.0 - level)


def student_t_multipliers(dof: float, level: float) -> tuple[float, float]:
    """VaR and CVaR of a Student-t variable with ``dof`` degrees of freedom scaled to unit variance.

    For the standard t, ``q = t_dof^{-1}(alpha)`` and ``ES = f_dof(q) (dof + q^2) / ((dof - 1)(1 - alpha))``; both are
    multiplied by ``sqrt((dof - 2) / dof)``, the scale at which the t's variance is one. ``dof = inf`` is the Normal.
    """
    if math.isinf(dof):
        return normal_var_cvar(0.0, 1.0, level)
    q = float(stats.t.ppf(level, dof))
    shrink = math.sqrt((dof - 2.0) / dof)
    es = float(stats.t.pdf(q, dof)) * (dof + q * q) / ((dof - 1.0) * (1.0 - level))
    return q * shrink, es * shrink


def student_t_var_cvar(mean: float, std: float, dof: float, level: float) -> tuple[float, float]:
    """VaR and CVaR of ``L = -R`` for ``R = mean + std T`` with ``T`` a unit-variance Student-t (``dof > 2``)."""
    var_unit, cvar_unit = student_t_multipliers(dof, level)
    return -mean + std * var_unit, -mean + std * cvar_unit


def check_dof(dof: float) -> float:
    """Degrees of freedom > 2 (finite variance) or ``inf``.

    Raises
    ------
    RiskInputError
        Not a number > 2.
    """
    try:
        number = float(dof)
    except (TypeError, ValueError):
        number = float("nan")
    if not number > 2.0:
        raise RiskInputError(
            f"Student-t degrees of freedom must be > 2 (finite variance); got {dof!r}.",
            hint="Pass e.g. dof=5, or leave it None to fit it by maximum likelihood.",
        )
    return number


def fit_student_t_dof(returns: np.ndarray) -> float:
    """Degrees of freedom of a Student-t fitted by maximum likelihood with its mean and variance matched to the sample.

    The location is the sample mean and the scale ``s sqrt((dof - 2) / dof)`` (``s`` the sample standard deviation,
    ddof = 1), so only ``dof`` is searched, over :data:`DOF_BOUNDS` (bounded scalar search on ``log(dof - 2)``). A
    result at the upper bound means the sample is as thin-tailed as a Normal.

    Parameters
    ----------
    returns : ndarray of shape (n_observations,)

    Returns
    -------
    float

    Raises
    ------
    RiskError
        Fewer than 3 observations or a zero standard deviation.
    """
    x = np.asarray(returns, dtype="float64")
    if x.shape[0] < 3:
        raise RiskError(
            f"Fitting Student-t degrees of freedom needs >= 3 observations; got {x.shape[0]}.",
            hint="Use a longer history or give dof.",
        )
    mean, std = float(x.mean()), float(x.std(ddof=1))
    if not std > 0:
        raise RiskError("The portfolio returns are constant: no tail to fit.", hint="Check the returns and weights.")
    z = (x - mean) / std

    def negative_loglik(log_excess: float) -> float:
        dof = 2.0 + math.exp(log_excess)
        scale = math.sqrt((dof - 2.0) / dof)
        return -float(stats.t.logpdf(z, dof, scale=scale).sum())

    bounds = (math.log(DOF_BOUNDS[0] - 2.0), math.log(DOF_BOUNDS[1] - 2.0))
    found = optimize.minimize_scalar(negative_loglik, bounds=bounds, method="bounded", options={"xatol": 1e-6})
    return 2.0 + math.exp(float(found.x))


def cornish_fisher_quantile(z: float, skew: float, excess_kurtosis: float) -> float:
    """Cornish-Fisher expansion of the standardised quantile at the Normal quantile ``z``.

    ``z + (z^2 - 1) S / 6 + (z^3 - 3 z) K / 24 - (2 z^3 - 5 z) S^2 / 36`` with ``S`` the skewness and ``K`` the excess
    kurtosis.
    """
    s, k = skew, excess_kurtosis
    return z + (z * z - 1.0) * s / 6.0 + (z**3 - 3.0 * z) * k / 24.0 - (2.0 * z**3 - 5.0 * z) * s * s / 36.0


def cornish_fisher_var_cvar(
    mean: float, std: float, skew: float, excess_kurtosis: float, level: float
) -> tuple[float, float]:
    """VaR and CVaR of ``L = -R`` with the return's quantiles from the Cornish-Fisher expansion.

    With ``c = Phi^{-1}(1 - alpha)`` (the return's lower tail) and ``g`` the expansion
    (:func:`cornish_fisher_quantile`), ``VaR = -(mean + std g(c))``. CVaR averages the expanded quantiles over the
    tail, ``-(mean + std E[g(Z) | Z < c])`` with ``Z ~ N(0, 1)``, in closed form from the truncated Normal moments
    ``E[Z^j; Z < c]`` (``Phi(c)``, ``-phi(c)``, ``Phi(c) - c phi(c)``, ``-(c^2 + 2) phi(c)``). This is the exact
    expected shortfall of ``mean + std g(Z)`` when ``g`` is increasing, which holds for moderate skewness and
    kurtosis (Maillard, 2012); with zero skewness and excess kurtosis both reduce to the Normal.

    References
    ----------
    Maillard, D. (2012), "A user's guide to the Cornish Fisher expansion", SSRN 1997178.
    """
    c = float(stats.norm.ppf(1.0 - level))
    density, mass = float(stats.norm.pdf(c)), 1.0 - level
    m0, m1 = mass, -density
    m2 = mass - c * density
    m3 = -(c * c + 2.0) * density
    s, k = skew, excess_kurtosis
    tail_sum = m1 + (m2 - m0) * s / 6.0 + (m3 - 3.0 * m1) * k / 24.0 - (2.0 * m3 - 5.0 * m1) * s * s / 36.0
    var = -(mean + std * cornish_fisher_quantile(c, s, k))
    cvar = -(mean + std * tail_sum / m0)
    return var, cvar


def horizon_returns(daily: np.ndarray, horizon: int, *, overlapping: bool = True) -> np.ndarray:
    """Simple returns over ``horizon`` days: daily log returns summed over each window, converted back.

    Parameters
    ----------
    daily : ndarray of shape (n_observations, n_assets)
        Simple daily returns (> -1).
    horizon : int
    overlapping : bool, default True
        Every window of ``horizon`` consecutive days (``n - h + 1`` scenarios), or consecutive blocks counted back
        from the latest day (``n // h`` scenarios; the oldest ``n mod h`` days are left out).

    Returns
    -------
    ndarray of shape (n_scenarios, n_assets)
        ``exp(sum log(1 + r)) - 1``; the daily returns themselves (unchanged, bit for bit) when ``horizon`` is 1.

    Raises
    ------
    RiskError
        Fewer than ``horizon`` days.
    """
    n = daily.shape[0]
    if n < horizon:
        raise RiskError(
            f"A {horizon}-day horizon needs at least {horizon} daily returns; got {n}.",
            hint="Use a longer history or a shorter horizon.",
        )
    if horizon == 1:
        return daily.copy()
    logs = np.log1p(daily)
    if overlapping:
        sums = np.lib.stride_tricks.sliding_window_view(logs, horizon, axis=0).sum(axis=-1)
    else:
        blocks = n // horizon
        sums = logs[n - blocks * horizon :].reshape(blocks, horizon, -1).sum(axis=1)
    return np.expm1(sums)
