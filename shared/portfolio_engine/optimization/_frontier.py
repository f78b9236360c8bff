"""The mean-variance efficient frontier: minimum variance for evenly spaced target returns.

The targets run from the return of the minimum-variance portfolio to the highest attainable return (a linear
program over the same constraints); every point is a re-solve of one target-return problem whose only change
is the target (the direct QP keeps its matrices and warm active set, the cvxpy problem its Parameters).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from portfolio_engine.exceptions import SpecificationError
from portfolio_engine.optimization._mv_engine import MeanVarianceEngine, arrays_of
from portfolio_engine.optimization.constraints import Constraints
from portfolio_engine.optimization.moments import Moments
from portfolio_engine.optimization.result import EfficientFrontier, result_from_arrays

__all__ = ["efficient_frontier"]

#: The last target sits this fraction of the range below the maximum return, where the feasible set is a point
#: (or a face) and an interior-point solver may report it as (almost) infeasible.
_TOP_MARGIN = 1e-7


def efficient_frontier(
    moments: Moments,
    constraints: Constraints | None = None,
    *,
    n_points: int = 50,
    risk_free_rate: float = 0.0,
    current_weights: Mapping[str, float] | pd.Series | None = None,
    benchmark_weights: Mapping[str, float] | pd.Series | None = None,
    factor_loadings: pd.DataFrame | None = None,
    solvers: Sequence[str] | None = None,
    solver_options: Mapping[str, Mapping[str, Any]] | None = None,
    direct: bool = True,
) -> EfficientFrontier:
    """``n_points`` efficient portfolios from minimum variance to maximum return.

    Parameters
    ----------
    moments : Moments
    constraints : Constraints, optional
    n_points : int, default 50
        At least 2.
    risk_free_rate : float, default 0.0
        For the Sharpe ratios reported.
    current_weights, benchmark_weights, factor_loadings : optional
        As in :meth:`MeanVarianceOptimizer.solve`.
    solvers, solver_options, direct : optional
        As in :class:`MeanVarianceOptimizer`.

    Returns
    -------
    EfficientFrontier
        Points by increasing target return (net of costs); each point's method is ``"efficient_frontier"``.

    Raises
    ------
    SpecificationError
        ``n_points < 2`` or constraints that do not fit the universe.
    UnboundedError
        The expected return is unbounded (no budget or bounds): the frontier has no top.
    InfeasibleError
        The constraints admit no portfolio.
    """
    if n_points < 2:
        raise SpecificationError(f"n_points must be >= 2; got {n_points!r}.", hint="Use e.g. 50 points.")
    assets, mu, cov = arrays_of(moments)
    resolved = (constraints if constraints is not None else Constraints()).resolve(
        tuple(str(a) for a in assets),
        current_weights=current_weights,
        benchmark_weights=benchmark_weights,
        factor_loadings=factor_loadings,
    )
    engine = MeanVarianceEngine(solvers=solvers, solver_options=solver_options, direct=direct)
    w_min, _ = engine.solve("min_variance", mu, cov, resolved)
    w_max, _ = engine.solve("max_return", mu, cov, resolved)
    low, high = (float(mu @ w) - resolved.trading_cost(w) for w in (w_min, w_max))
    high = max(high, low)
    targets = np.linspace(low, high, n_points)
    targets[-1] = high - _TOP_MARGIN * (high - low)
    points = []
    for target in targets:
        w, diagnostics = engine.solve("target_return", mu, cov, resolved, target=float(target))
        points.append(
            result_from_arrays(
                w, mu, cov, assets, method="efficient_frontier", diagnostics=diagnostics, risk_free_rate=risk_free_rate
            )
        )
    return EfficientFrontier(points=tuple(points))
