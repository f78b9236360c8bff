"""Black-Litterman: a market-implied prior blended with investor views into posterior moments.

The model is written as pure functions rather than an estimator: it learns nothing from a returns sample.
It maps a covariance, market weights and views to new moments, so it composes with any covariance estimator
upstream and any optimizer downstream (``black_litterman(...)`` returns a :class:`Moments`).

Formulas (all in annual units, ``n`` assets, ``k`` views):

* prior (reverse optimisation): ``pi = delta * Sigma @ w_mkt (+ r_f)``;
* views ``P @ mu ~ N(Q, Omega)`` with ``P`` of shape (k, n);
* posterior mean ``mu_BL = pi + tau Sigma P' (P tau Sigma P' + Omega)^-1 (Q - P pi)``;
* posterior covariance ``Sigma_BL = Sigma + M`` with
  ``M = tau Sigma - tau Sigma P' (P tau Sigma P' + Omega)^-1 P tau Sigma``.

This form never inverts ``Omega``, so a view held with full confidence (``Omega = 0``) is allowed.

References
----------
.. [1] Black, F. and Litterman, R. (1992). "Global Portfolio Optimization". Financial Analysts Journal 48(5).
.. [2] He, G. and Litterman, R. (1999). "The Intuition Behind Black-Litterman Model Portfolios". Goldman Sachs.
.. [3] Idzorek, T. (2005). "A Step-by-Step Guide to the Black-Litterman Model: Incorporating User-Specified
   Confidence Levels". Ibbotson Associates working paper.
.. [4] Walters, J. (2014). "The Black-Litterman Model in Detail". SSRN 1314585.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from portfolio_engine.exceptions import SpecificationError
from portfolio_engine.optimization._bl_views import RelativeView, Views, build_views
from portfolio_engine.optimization._checks import SYMMETRY_TOLERANCE, check_covariance, check_positive
from portfolio_engine.optimization._dispatch import method_params, register_method
from portfolio_engine.optimization.mean_variance import OBJECTIVES, MeanVarianceOptimizer
from portfolio_engine.optimization.moments import Moments, equilibrium_mean
from portfolio_engine.optimization.result import OptimizationResult
from portfolio_engine.optimization.spec import PortfolioSpec

__all__ = [
    "RelativeView",
    "Views",
    "black_litterman",
    "black_litterman_method",
    "black_litterman_posterior",
    "build_views",
    "he_litterman_omega",
    "idzorek_omega",
]


def _view_matrices(views: Views, cov: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    if not views.picking.columns.equals(cov.index):
        missing = cov.index.difference(views.picking.columns).union(views.picking.columns.difference(cov.index))
        if len(missing):
            raise SpecificationError(
                f"The views' assets differ from the covariance's: {list(missing)}.",
                hint="Build views with build_views(cov.index, ...).",
            )
    p = views.picking.reindex(columns=cov.index).to_numpy(dtype=float)
    return p, views.returns.to_numpy(dtype=float)


def he_litterman_omega(views: Views, cov: pd.DataFrame, tau: float, *, full: bool = False) -> pd.DataFrame:
    """View uncertainty proportional to the prior's: ``Omega = diag(tau P Sigma P')`` (He and Litterman 1999).

    Parameters
    ----------
    views : Views
        ``P`` and ``Q``.
    cov : DataFrame of shape (n_assets, n_assets)
        Annual covariance ``Sigma``.
    tau : float
        Scale of the prior's uncertainty, > 0.
    full : bool, default False
        Keep the off-diagonal terms (``tau P Sigma P'``) instead of the diagonal He-Litterman use.

    Returns
    -------
    DataFrame of shape (n_views, n_views)
        ``Omega``, indexed by view name.

    Raises
    ------
    SpecificationError
        If ``tau <= 0`` or the views' assets differ from ``cov``'s.
    """
    sigma = check_covariance(cov)
    p, _ = _view_matrices(views, cov)
    omega = check_positive(tau, "tau") * p @ sigma @ p.T
    if not full:
        omega = np.diag(np.diag(omega))
    return pd.DataFrame(omega, index=views.picking.index, columns=views.picking.index)


def idzorek_omega(
    views: Views, cov: pd.DataFrame, tau: float, confidences: Sequence[float] | Mapping[str, float]
) -> pd.DataFrame:
    """Diagonal ``Omega`` from per-view confidence levels in [0, 1] (Idzorek 2005).

    Idzorek's procedure takes each view ``k`` alone, computes the unconstrained weights
    ``w = (delta Sigma)^-1 mu_BL`` at full confidence (``omega_k = 0``), aims at ``w_mkt + C_k (w_100 - w_mkt)``,
    and picks the ``omega_k`` whose weights come closest. With one view the tilt ``w(omega_k) - w_mkt`` is
    ``p_k' (Q_k - p_k pi) tau / (delta (tau p_k Sigma p_k' + omega_k))``: a multiple of ``p_k`` whose size is
    the fraction ``tau p_k Sigma p_k' / (tau p_k Sigma p_k' + omega_k)`` of the full-confidence one. Setting that
    fraction to ``C_k`` hits the target exactly (Walters 2014, section 5.1), whatever ``delta``, ``pi`` and ``Q``:

        ``omega_k = tau * (1 - C_k) / C_k * p_k Sigma p_k'``

    ``C_k = 1`` gives ``omega_k = 0`` (the view holds exactly); ``C_k = 0`` gives ``omega_k = inf`` (the view is
    ignored; :func:`black_litterman_posterior` drops views of infinite variance).

    Parameters
    ----------
    views : Views
        ``P`` and ``Q``.
    cov : DataFrame of shape (n_assets, n_assets)
        Annual covariance ``Sigma``.
    tau : float
        Scale of the prior's uncertainty, > 0.
    confidences : sequence of float or mapping of str to float
        One confidence per view, in view order or keyed by view name.

    Returns
    -------
    DataFrame of shape (n_views, n_views)
        Diagonal ``Omega`` (``inf`` for zero-confidence views).

    Raises
    ------
    SpecificationError
        If a confidence is missing, not finite or outside [0, 1].

    References
    ----------
    .. [1] Idzorek, T. (2005). "A Step-by-Step Guide to the Black-Litterman Model: Incorporating User-Specified
       Confidence Levels". Ibbotson Associates working paper.
    """
    names = views.picking.index
    if isinstance(confidences, Mapping):
        if missing := [name for name in names if name not in confidences]:
            raise SpecificationError(f"No confidence for views {missing}.", hint="Give one confidence per view.")
        levels = np.array([confidences[name] for name in names], dtype=float)
    else:
        levels = np.asarray(list(confidences), dtype=float)
    if levels.shape != (len(names),) or not np.isfinite(levels).all() or (levels < 0).any() or (levels > 1).any():
        raise SpecificationError(
            f"Need one confidence in [0, 1] per view ({len(names)} views); got {levels.tolist()}.",
            hint="Express confidence as a fraction: 0.5 is 50 %.",
        )
    base = np.diag(he_litterman_omega(views, cov, tau).to_numpy())
    with np.errstate(divide="ignore"):
        alpha = np.where(levels > 0, (1.0 - levels) / np.where(levels > 0, levels, 1.0), np.inf)
    diagonal = np.where(np.isinf(alpha), np.inf, alpha * base)
    return pd.DataFrame(np.diag(diagonal), index=names, columns=names)


def black_litterman_posterior(
    prior: pd.Series,
    cov: pd.DataFrame,
    views: Views | None,
    *,
    tau: float,
    omega: pd.DataFrame | None = None,
) -> Moments:
    """Posterior moments given a prior mean, a covariance, views and their uncertainty.

    Parameters
    ----------
    prior : Series of shape (n_assets,)
        ``pi``, annual, indexed like ``cov``.
    cov : DataFrame of shape (n_assets, n_assets)
        Annual covariance ``Sigma``.
    views : Views or None
        ``P`` and ``Q``; None or no views returns the prior.
    tau : float
        Scale of the prior's uncertainty (the prior of ``mu`` is ``N(pi, tau Sigma)``), > 0.
    omega : DataFrame of shape (n_views, n_views), optional
        View covariance; defaults to :func:`he_litterman_omega`. Views with an infinite diagonal entry (and zero
        off-diagonal entries) are dropped: they carry no information.

    Returns
    -------
    Moments
        ``mu`` = ``mu_BL`` and ``cov`` = ``Sigma + M``. With no views ``mu`` is ``pi`` exactly and ``cov`` is
        ``(1 + tau) Sigma``, the prior's predictive covariance (the same formula with ``M = tau Sigma``).

    Raises
    ------
    SpecificationError
        If shapes or assets disagree, ``Omega`` is not symmetric positive semi-definite, or the views are linearly
        dependent while held with full confidence (``P tau Sigma P' + Omega`` singular).
    """
    sigma = check_covariance(cov)
    tau = check_positive(tau, "tau")
    if not prior.index.equals(cov.index):
        raise SpecificationError(
            "prior and cov name different assets or orders.", hint="Compute pi with equilibrium_mean(cov, ...)."
        )
    pi = prior.to_numpy(dtype=float)
    if views is None or len(views) == 0:
        return Moments(mu=prior.rename("mu").copy(), cov=pd.DataFrame(sigma * (1.0 + tau), cov.index, cov.columns))
    p, q = _view_matrices(views, cov)
    om = he_litterman_omega(views, cov, tau).to_numpy() if omega is None else _omega(omega, views)
    keep = np.isfinite(np.diag(om))
    if not np.isfinite(om[np.ix_(keep, keep)]).all() or not np.all(om[np.ix_(keep, ~keep)] == 0):
        raise SpecificationError(
            "Omega has infinite entries off the diagonal.", hint="Mark an ignored view by an infinite variance only."
        )
    if not keep.any():
        return black_litterman_posterior(prior, cov, None, tau=tau)
    p, q, om = p[keep], q[keep], om[np.ix_(keep, keep)]
    tau_sigma = tau * sigma
    tau_sigma_pt = tau_sigma @ p.T
    a = p @ tau_sigma_pt + om
    if (condition := float(np.linalg.cond(a))) > 1e12:
        raise SpecificationError(
            f"P tau Sigma P' + Omega is singular (condition number {condition:.3g}) for the views "
            f"{[str(v) for v in views.picking.index[keep]]}: they are linearly dependent and held with full "
            "confidence.",
            hint="Drop redundant views or lower their confidence below 100 %.",
        )
    gain = np.linalg.solve(a, np.column_stack([q - p @ pi, tau_sigma_pt.T]))
    mu = pi + tau_sigma_pt @ gain[:, 0]
    m = tau_sigma - tau_sigma_pt @ gain[:, 1:]
    post = sigma + 0.5 * (m + m.T)
    return Moments(mu=pd.Series(mu, index=cov.index, name="mu"), cov=pd.DataFrame(post, cov.index, cov.columns))


def _omega(omega: pd.DataFrame, views: Views) -> np.ndarray:
    names = views.picking.index
    if not (omega.index.equals(names) and omega.columns.equals(names)):
        raise SpecificationError(
            f"Omega must be indexed by the view names {list(names)} on both axes.",
            hint="Use he_litterman_omega(...) or idzorek_omega(...), or index your matrix by view name.",
        )
    om = omega.to_numpy(dtype=float)
    finite = np.isfinite(np.diag(om))
    sub = om[np.ix_(finite, finite)]
    smallest = float(np.linalg.eigvalsh(0.5 * (sub + sub.T)).min()) if sub.size and not np.isnan(sub).any() else 0.0
    if (
        np.isnan(om).any()
        or (np.diag(om) < 0).any()
        or not np.allclose(sub, sub.T, atol=SYMMETRY_TOLERANCE, rtol=0.0)
        or smallest < -1e-12 * max(1.0, float(np.abs(sub).max(initial=0.0)))
    ):
        raise SpecificationError(
            f"Omega must be symmetric positive semi-definite; got diagonal {np.diag(om).tolist()} and smallest "
            f"eigenvalue {smallest:.6g} (NaN present: {bool(np.isnan(om).any())}).",
            hint="View variances cannot be negative; use he_litterman_omega or idzorek_omega.",
        )
    return om


def black_litterman(
    cov: pd.DataFrame,
    market_weights: pd.Series,
    *,
    risk_aversion: float,
    tau: float = 0.05,
    absolute: Mapping[str, float] | None = None,
    relative: Sequence[RelativeView] = (),
    confidences: Sequence[float] | Mapping[str, float] | None = None,
    risk_free_rate: float = 0.0,
) -> Moments:
    """Black-Litterman posterior moments from market weights and friendly views, in one call.

    Parameters
    ----------
    cov : DataFrame of shape (n_assets, n_assets)
        Annual covariance ``Sigma``.
    market_weights : Series of shape (n_assets,)
        Market capitalisations or weights (normalised to sum to one).
    risk_aversion : float
        ``delta`` of the prior ``pi = delta Sigma w_mkt + r_f``.
    tau : float, default 0.05
        Scale of the prior's uncertainty.
    absolute : mapping of str to float, optional
        Absolute views ``{asset: annual return}``.
    relative : sequence of RelativeView, default ()
        Relative views.
    confidences : sequence or mapping of float, optional
        Idzorek confidence per view in [0, 1]; without it ``Omega`` is He-Litterman's ``diag(tau P Sigma P')``.
    risk_free_rate : float, default 0.0
        Annual rate added to ``pi``; absolute views must then be total returns too.

    Returns
    -------
    Moments
        Posterior ``mu`` and ``cov``; the prior (``pi``, ``(1 + tau) Sigma``) when no view is given.

    Raises
    ------
    SpecificationError
        See :func:`~portfolio_engine.optimization.moments.equilibrium_mean`, :func:`build_views` and
        :func:`black_litterman_posterior`.
    """
    prior = equilibrium_mean(cov, market_weights, risk_aversion=risk_aversion, risk_free_rate=risk_free_rate)
    views = build_views(cov.index, absolute=absolute, relative=relative)
    omega = None if confidences is None or len(views) == 0 else idzorek_omega(views, cov, tau, confidences)
    return black_litterman_posterior(prior, cov, views, tau=tau, omega=omega)


_BL_PARAMS = frozenset({"market_weights", "tau", "absolute", "relative", "confidences", "objective"})


def black_litterman_method(
    spec: PortfolioSpec, moments: Moments, returns: pd.DataFrame | None = None, **context: Any
) -> OptimizationResult:
    """``optimize`` entry for ``method: black_litterman``: posterior moments, then a mean-variance objective.

    ``spec.method_params``: ``market_weights`` (required; ``{asset: weight or capitalisation}``), ``tau``
    (default 0.05), ``absolute`` (``{asset: annual return}``), ``relative`` (a list of
    ``{long, short, outperformance, name}``), ``confidences`` (Idzorek, per view; He-Litterman Omega without),
    ``objective`` (default ``"max_sharpe"``; any mean-variance objective). The prior is
    ``spec.risk_aversion * Sigma w_mkt + spec.risk_free_rate`` on ``moments.cov``; the statistics of the result
    are computed with the posterior moments, and ``extras`` holds ``prior`` and ``posterior_mu``.

    Raises
    ------
    SpecificationError
        Missing market weights, unknown parameters, malformed views.
    InfeasibleError, UnboundedError, SolverFailedError
        From the mean-variance objective.
    """
    params = method_params(spec, _BL_PARAMS)
    if "market_weights" not in params:
        raise SpecificationError(
            "black_litterman needs method_params.market_weights; got none.",
            hint="Give {asset: market capitalisation or weight} for every asset of the universe.",
        )
    objective = params.get("objective", "max_sharpe")
    if objective not in OBJECTIVES:
        raise SpecificationError(f"Unknown objective {objective!r}.", hint=f"Use one of {list(OBJECTIVES)}.")
    try:
        relative = [RelativeView(**view) for view in params.get("relative", [])]
    except TypeError as exc:
        raise SpecificationError(
            f"A relative view is malformed: {exc}.",
            hint="Write each as {long: [...], short: [...], outperformance: x}.",
        ) from exc
    prior = equilibrium_mean(
        moments.cov,
        pd.Series(params["market_weights"], dtype=float),
        risk_aversion=spec.risk_aversion,
        risk_free_rate=spec.risk_free_rate,
    )
    tau = float(params.get("tau", 0.05))
    views = build_views(moments.cov.index, absolute=params.get("absolute"), relative=relative)
    confidences = params.get("confidences")
    omega = None if confidences is None or len(views) == 0 else idzorek_omega(views, moments.cov, tau, confidences)
    posterior = black_litterman_posterior(prior, moments.cov, views, tau=tau, omega=omega)
    optimizer = MeanVarianceOptimizer(
        objective,
        spec.constraints,
        risk_aversion=spec.risk_aversion,
        risk_free_rate=spec.risk_free_rate,
        target_return=spec.target_return,
        target_volatility=spec.target_volatility,
        periods_per_year=spec.periods_per_year,
    )
    result = optimizer.solve(posterior, **context)
    extras = {**result.extras, "prior": prior, "posterior_mu": posterior.mu, "objective": objective}
    return dataclasses.replace(result, method="black_litterman", extras=extras)


register_method("black_litterman", black_litterman_method)
