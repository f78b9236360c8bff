"""Hierarchical Risk Parity (López de Prado 2016): a long-only allocation that needs no matrix inversion.

Three steps on a covariance ``Sigma``:

1. **Tree clustering.** Correlation distance ``d_ij = sqrt((1 - rho_ij) / 2)`` (a metric), clustered by
   ``scipy.cluster.hierarchy.linkage`` on the condensed distances (single linkage by default, as in the paper).
2. **Quasi-diagonalisation.** Assets are ordered as the dendrogram's leaves, left to right (the paper's
   recursive replacement of clusters by their two children yields the same order); ``optimal_ordering=True``
   reorders them first to minimise the distance between neighbouring leaves (Bar-Joseph et al. 2001).
3. **Recursive bisection.** The ordered list is split in two halves, recursively; each half's variance is that
   of its inverse-variance portfolio, and the halves share the parent's weight in inverse proportion to it:
   ``alpha = 1 - V_left / (V_left + V_right)`` goes to the left half.

The paper's code calls ``linkage`` on the square distance matrix, which scipy reads as observations: it then
clusters on Euclidean distances *between columns of* ``d``. We, PyPortfolioOpt's ``HRPOpt`` and skfolio's
``HierarchicalRiskParity`` cluster on ``d`` itself (the paper's text); skfolio also defaults to Ward linkage and
optimal leaf ordering, which are options here.

HRP weights are invariant to scaling ``Sigma`` by a constant, so the units (daily or annual) do not matter.

References
----------
.. [1] López de Prado, M. (2016). "Building Diversified Portfolios that Outperform Out of Sample".
   Journal of Portfolio Management 42(4), 59-69.
.. [2] Bar-Joseph, Z., Gifford, D. K. and Jaakkola, T. S. (2001). "Fast optimal leaf ordering for hierarchical
   clustering". Bioinformatics 17, S22-S29.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
from scipy.cluster import hierarchy
from scipy.spatial.distance import squareform

from portfolio_engine.exceptions import SpecificationError
from portfolio_engine.optimization._checks import check_covariance
from portfolio_engine.optimization._dispatch import method_params, register_method
from portfolio_engine.optimization._long_only import check_long_only_budget
from portfolio_engine.optimization.moments import Moments
from portfolio_engine.optimization.result import OptimizationResult, SolverDiagnostics, portfolio_result
from portfolio_engine.optimization.spec import PortfolioSpec

__all__ = ["HRPSolution", "Linkage", "correlation_distance", "hrp_method", "hrp_weights"]

Linkage = Literal["single", "complete", "average", "weighted", "centroid", "median", "ward"]


@dataclass(frozen=True)
class HRPSolution:
    """Weights and the clustering behind them.

    Attributes
    ----------
    weights : Series of shape (n_assets,)
        Long-only weights summing to the budget, in ``cov``'s asset order.
    order : Index of shape (n_assets,)
        Assets in quasi-diagonal (dendrogram leaf) order.
    linkage_matrix : ndarray of shape (n_assets - 1, 4)
        scipy linkage matrix (after optimal leaf ordering when asked).
    """

    weights: pd.Series
    order: pd.Index
    linkage_matrix: np.ndarray


def correlation_distance(cov: pd.DataFrame) -> pd.DataFrame:
    """Correlation distance ``sqrt((1 - rho) / 2)`` between assets, in [0, 1].

    Parameters
    ----------
    cov : DataFrame of shape (n_assets, n_assets)
        Covariance (any units).

    Returns
    -------
    DataFrame of shape (n_assets, n_assets)
        Symmetric distances with a zero diagonal.

    Raises
    ------
    SpecificationError
        If ``cov`` is not a finite square DataFrame with positive variances.
    """
    sigma = check_covariance(cov, positive_variances=True)
    scale = np.sqrt(np.diag(sigma))
    corr = np.clip(sigma / np.outer(scale, scale), -1.0, 1.0)
    distance = np.sqrt(np.clip((1.0 - corr) / 2.0, 0.0, 1.0))
    np.fill_diagonal(distance, 0.0)
    return pd.DataFrame(distance, index=cov.index, columns=cov.columns)


def _bisect(sigma: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Recursive bisection of ``order`` (asset positions); weights, by asset position, sum to one."""
    inverse_variance = 1.0 / np.diag(sigma)
    weights = np.ones(len(order))
    pending = [order]
    while pending:
        halves = [(items[: len(items) // 2], items[len(items) // 2 :]) for items in pending if len(items) > 1]
        pending = []
        for left, right in halves:
            risks = []
            for cluster in (left, right):
                w = inverse_variance[cluster] / inverse_variance[cluster].sum()
                risks.append(float(w @ sigma[np.ix_(cluster, cluster)] @ w))
            alpha = 1.0 - risks[0] / (risks[0] + risks[1])
            weights[left] *= alpha
            weights[right] *= 1.0 - alpha
            pending += [left, right]
    return weights


def hrp_weights(
    cov: pd.DataFrame,
    *,
    linkage: Linkage = "single",
    optimal_ordering: bool = False,
    budget: float = 1.0,
) -> HRPSolution:
    """Hierarchical Risk Parity weights.

    Parameters
    ----------
    cov : DataFrame of shape (n_assets, n_assets)
        Covariance (any units; e.g. ``Moments.cov`` or ``returns.cov()``).
    linkage : {"single", "complete", "average", "weighted", "centroid", "median", "ward"}, default "single"
        scipy linkage method; the paper uses single linkage.
    optimal_ordering : bool, default False
        Reorder the dendrogram's leaves to minimise neighbouring distances (skfolio's default) before bisecting.
    budget : float, default 1.0
        Sum of the weights (> 0; HRP is long-only).

    Returns
    -------
    HRPSolution
        Weights, leaf order and linkage matrix.

    Raises
    ------
    SpecificationError
        If ``cov`` is invalid, ``linkage`` unknown or ``budget <= 0``.

    References
    ----------
    .. [1] López de Prado, M. (2016). "Building Diversified Portfolios that Outperform Out of Sample".
       Journal of Portfolio Management 42(4), 59-69.
    """
    if linkage not in get_args(Linkage):
        raise SpecificationError(
            f"Unknown linkage {linkage!r}.", hint=f"Use one of {', '.join(get_args(Linkage))} (scipy's methods)."
        )
    if not np.isfinite(budget) or budget <= 0:
        raise SpecificationError(f"HRP is long-only: the budget must be > 0; got {budget!r}.", hint="Use 1.0.")
    sigma = check_covariance(cov, positive_variances=True)
    n_assets = sigma.shape[0]
    if n_assets == 1:
        link = np.empty((0, 4))
        order = np.array([0])
    else:
        condensed = squareform(correlation_distance(cov).to_numpy(), checks=False)
        link = hierarchy.linkage(condensed, method=linkage)
        if optimal_ordering:
            link = hierarchy.optimal_leaf_ordering(link, condensed)
        order = hierarchy.leaves_list(link)
    weights = _bisect(sigma, order)
    return HRPSolution(
        weights=pd.Series(weights * budget, index=cov.index, name="weight"),
        order=cov.index[order],
        linkage_matrix=link,
    )


def hrp_method(
    spec: PortfolioSpec, moments: Moments, returns: pd.DataFrame | None = None, **context: Any
) -> OptimizationResult:
    """``optimize`` entry for ``method: hrp``: HRP on ``moments.cov``.

    ``spec.method_params`` may set ``linkage`` (default ``"single"``) and ``optimal_ordering`` (default False).
    ``returns`` and the solve-time ``context`` (holdings, benchmark, loadings) are not used.

    Raises
    ------
    SpecificationError
        A constraint other than long-only and a positive budget, or a bad linkage.
    """
    start = time.perf_counter()
    budget = check_long_only_budget(spec.constraints, "hrp", risk_budgets=False)
    params = method_params(spec, frozenset({"linkage", "optimal_ordering"}))
    solution = hrp_weights(
        moments.cov,
        linkage=params.get("linkage", "single"),
        optimal_ordering=bool(params.get("optimal_ordering", False)),
        budget=budget,
    )
    diagnostics = SolverDiagnostics(
        solver="hierarchical-bisection",
        status="optimal",
        solve_seconds=time.perf_counter() - start,
        active_constraints=("budget",),
    )
    return portfolio_result(
        solution.weights,
        moments,
        method="hrp",
        diagnostics=diagnostics,
        risk_free_rate=spec.risk_free_rate,
        extras={"order": [str(a) for a in solution.order]},
    )


register_method("hrp", hrp_method)
