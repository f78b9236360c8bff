"""Michaud's resampled efficient frontier: mean-variance weights averaged over re-estimated moments.

Each of ``n_resamples`` draws simulates a return history as long as the one the moments came from, either

* ``"parametric"``: ``n_observations`` i.i.d. per-period returns from ``N(mu / ppy, Sigma / ppy)``, or
* ``"bootstrap"``: ``n_observations`` rows of the historical returns drawn with replacement,

re-estimates the sample mean and covariance (annualised), and solves the mean-variance problem under the same
constraints. On each draw's own frontier the points are **rank-matched**: point ``m`` of ``n_points`` targets
the return ``low + m / (n_points - 1) * (high - low)`` between that draw's minimum-variance (``m = 0``) and
maximum-return (``m = n_points - 1``) portfolios, both solved exactly. The resampled frontier averages the
weights of equal rank across draws; the resampled single portfolio averages one rank, or each draw's
maximum-Sharpe portfolio. Averages of feasible weights stay feasible for convex constraints (UCITS' rule is not
convex, so it may not hold for the average).

Randomness: ``SeedSequence(seed).spawn(n_resamples)`` gives each draw its own stream, so the same seed gives the
same weights whatever the order draws are solved in, and different seeds give different draws.

References
----------
.. [1] Michaud, R. O. (1998). "Efficient Asset Management: A Practical Guide to Stock Portfolio Optimization
   and Asset Allocation". Harvard Business School Press.
.. [2] Michaud, R. O. and Michaud, R. O. (2008). "Estimation Error and Portfolio Optimization: A Resampling
   Solution". Journal of Investment Management 6(1), 8-28.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from portfolio_engine.exceptions import InfeasibleError, SpecificationError
from portfolio_engine.optimization._dispatch import method_params, register_method
from portfolio_engine.optimization._mv_engine import arrays_of
from portfolio_engine.optimization._resample_draws import Sampling, Seed, draw_moments
from portfolio_engine.optimization.constraints import Constraints
from portfolio_engine.optimization.mean_variance import MeanVarianceOptimizer
from portfolio_engine.optimization.moments import Moments
from portfolio_engine.optimization.result import (
    EfficientFrontier,
    OptimizationResult,
    SolverDiagnostics,
    portfolio_result,
    portfolio_stats,
)
from portfolio_engine.optimization.spec import PortfolioSpec

__all__ = ["ResampledFrontier", "draw_moments", "resampled_frontier", "resampled_method", "resampled_portfolio"]

Holdings = Mapping[str, float] | pd.Series | None


@dataclass(frozen=True)
class ResampledFrontier:
    """Rank-matched averages of per-draw efficient portfolios.

    Attributes
    ----------
    weights : DataFrame of shape (n_points, n_assets)
        Row ``m``: average over draws of each draw's ``m``-th frontier portfolio.
    expected_returns, volatilities : ndarray of shape (n_points,)
        Of the averaged weights, under the original (annual) moments.
    draw_weights : ndarray of shape (n_resamples, n_points, n_assets)
        Every draw's frontier, for dispersion diagnostics.
    """

    weights: pd.DataFrame
    expected_returns: np.ndarray
    volatilities: np.ndarray
    draw_weights: np.ndarray


class _Solver:
    """Per-objective optimizers, built once and re-solved on every draw."""

    def __init__(self, constraints: Constraints | None, risk_free_rate: float, context: Mapping[str, object]) -> None:
        self.context = dict(context)

        def make(objective: str) -> MeanVarianceOptimizer:
            return MeanVarianceOptimizer(objective, constraints, risk_free_rate=risk_free_rate)

        self.min_variance, self.max_return = make("min_variance"), make("max_return")
        self.target, self.max_sharpe = make("target_return"), make("max_sharpe")

    def weights(self, optimizer: MeanVarianceOptimizer, mu: np.ndarray, cov: np.ndarray, assets: tuple) -> np.ndarray:
        return optimizer.solve_weights(mu, cov, assets=assets, **self.context)  # type: ignore[arg-type]

    def frontier(self, mu: np.ndarray, cov: np.ndarray, assets: tuple, ranks: np.ndarray, n_points: int) -> np.ndarray:
        """Weights at the given ranks of this draw's frontier, shape (len(ranks), n_assets)."""
        w_low = self.weights(self.min_variance, mu, cov, assets)
        if not np.any(ranks > 0):  # minimum variance alone: no need for the top (which may be unbounded)
            return np.tile(w_low, (len(ranks), 1))
        w_high = self.weights(self.max_return, mu, cov, assets)
        low, high = float(mu @ w_low), max(float(mu @ w_high), float(mu @ w_low))
        out = np.empty((len(ranks), len(assets)))
        for row, rank in enumerate(ranks):
            if rank in (0, n_points - 1):
                # The ends are the two anchor solves; the top one is a maximum-return LP vertex, where a
                # target-return QP would have an (almost) empty interior.
                out[row] = w_low if rank == 0 else w_high
                continue
            self.target.target_return = low + rank / (n_points - 1) * (high - low)
            out[row] = self.weights(self.target, mu, cov, assets)
        return out


def resampled_frontier(
    moments: Moments,
    constraints: Constraints | None = None,
    *,
    n_points: int = 20,
    n_resamples: int = 100,
    n_observations: int | None = None,
    returns: pd.DataFrame | None = None,
    sampling: Sampling = "parametric",
    seed: Seed = None,
    periods_per_year: int = 252,
    current_weights: Holdings = None,
    benchmark_weights: Holdings = None,
    factor_loadings: pd.DataFrame | None = None,
) -> ResampledFrontier:
    """Michaud's resampled efficient frontier (rank-matched averages of per-draw frontiers).

    Parameters
    ----------
    moments : Moments
        Annual moments (and the source of parametric draws).
    constraints : Constraints, optional
        Default ``Constraints()`` (long-only, fully invested).
    n_points : int, default 20
        Frontier points per draw (>= 2), from minimum variance to maximum return.
    n_resamples, n_observations, returns, sampling, seed, periods_per_year
        See :func:`draw_moments`.
    current_weights, benchmark_weights, factor_loadings : optional
        Solve-time data of the constraints, as in :meth:`MeanVarianceOptimizer.solve`.

    Returns
    -------
    ResampledFrontier

    Raises
    ------
    SpecificationError
        Bad parameters (see :func:`draw_moments`).
    InfeasibleError, UnboundedError, SolverFailedError
        From a draw's mean-variance problem.

    References
    ----------
    .. [1] Michaud, R. O. (1998). "Efficient Asset Management". Harvard Business School Press.
    """
    if n_points < 2:
        raise SpecificationError(f"n_points must be >= 2; got {n_points!r}.", hint="Use e.g. 20.")
    names, mu, cov = arrays_of(moments)
    assets = tuple(str(a) for a in names)
    context = {"current_weights": current_weights, "benchmark_weights": benchmark_weights}
    solver = _Solver(constraints, 0.0, context | {"factor_loadings": factor_loadings})
    ranks = np.arange(n_points)
    draws = np.stack(
        [
            solver.frontier(mu_b, cov_b, assets, ranks, n_points)
            for mu_b, cov_b in draw_moments(
                moments,
                n_resamples=n_resamples,
                n_observations=n_observations,
                returns=returns,
                sampling=sampling,
                seed=seed,
                periods_per_year=periods_per_year,
            )
        ]
    )
    average = draws.mean(axis=0)
    stats = [portfolio_stats(w, mu, cov) for w in average]
    return ResampledFrontier(
        weights=pd.DataFrame(average, columns=pd.Index(list(assets))),
        expected_returns=np.array([s[0] for s in stats]),
        volatilities=np.array([s[1] for s in stats]),
        draw_weights=draws,
    )


def resampled_portfolio(
    moments: Moments,
    constraints: Constraints | None = None,
    *,
    portfolio: Literal["max_sharpe"] | int = "max_sharpe",
    n_points: int = 20,
    n_resamples: int = 100,
    n_observations: int | None = None,
    returns: pd.DataFrame | None = None,
    sampling: Sampling = "parametric",
    seed: Seed = None,
    periods_per_year: int = 252,
    risk_free_rate: float = 0.0,
    current_weights: Holdings = None,
    benchmark_weights: Holdings = None,
    factor_loadings: pd.DataFrame | None = None,
) -> tuple[pd.Series, int]:
    """One resampled portfolio: the average of per-draw maximum-Sharpe portfolios, or of one frontier rank.

    Parameters
    ----------
    moments : Moments
    constraints : Constraints, optional
    portfolio : "max_sharpe" or int, default "max_sharpe"
        ``"max_sharpe"``, or a rank in ``[0, n_points)`` (0 is minimum variance, ``n_points - 1`` maximum return).
    n_points : int, default 20
        Frontier resolution for a rank.
    risk_free_rate : float, default 0.0
        For the per-draw maximum Sharpe ratio.
    n_resamples, n_observations, returns, sampling, seed, periods_per_year, current_weights, benchmark_weights,
    factor_loadings
        As in :func:`resampled_frontier`.

    Returns
    -------
    tuple of (Series of shape (n_assets,), int)
        Averaged weights and the number of draws averaged. For ``"max_sharpe"``, draws where no portfolio beats
        ``risk_free_rate`` (no tangency portfolio) are left out.

    Raises
    ------
    SpecificationError
        Bad parameters, or a rank outside ``[0, n_points)``.
    InfeasibleError
        For ``"max_sharpe"``, when no draw has a portfolio above the risk-free rate; constraints that admit no
        portfolio.
    UnboundedError, SolverFailedError
        From a draw's mean-variance problem.
    """
    assets = tuple(str(a) for a in moments.mu.index)
    if portfolio != "max_sharpe" and not (isinstance(portfolio, int) and 0 <= portfolio < n_points):
        raise SpecificationError(
            f"portfolio must be 'max_sharpe' or a rank in [0, {n_points}); got {portfolio!r}.",
            hint="Use 'max_sharpe', 0 (minimum variance) or n_points - 1 (maximum return).",
        )
    context = {"current_weights": current_weights, "benchmark_weights": benchmark_weights}
    solver = _Solver(constraints, risk_free_rate, context | {"factor_loadings": factor_loadings})
    draws = draw_moments(
        moments,
        n_resamples=n_resamples,
        n_observations=n_observations,
        returns=returns,
        sampling=sampling,
        seed=seed,
        periods_per_year=periods_per_year,
    )
    total, count = np.zeros(len(assets)), 0
    for mu_b, cov_b in draws:
        if portfolio == "max_sharpe":
            try:
                total += solver.weights(solver.max_sharpe, mu_b, cov_b, assets)
            except InfeasibleError as exc:
                if exc.constraints != ["risk_free_rate"]:
                    raise
                continue  # this draw has no tangency portfolio
        else:
            total += solver.frontier(mu_b, cov_b, assets, np.array([portfolio]), n_points)[0]
        count += 1
    if count == 0:
        raise InfeasibleError(
            f"No draw had a portfolio with an expected return above the risk-free rate {risk_free_rate:.6g}.",
            constraints=["risk_free_rate"],
            hint="Lower the risk-free rate, or resample a frontier rank instead of the maximum Sharpe ratio.",
        )
    return pd.Series(total / count, index=pd.Index(list(assets)), name="weight"), count


_RESAMPLED_PARAMS = frozenset({"sampling", "portfolio", "n_points", "frontier"})


def resampled_method(
    spec: PortfolioSpec,
    moments: Moments,
    returns: pd.DataFrame | None = None,
    *,
    current_weights: pd.Series | None = None,
    benchmark_weights: pd.Series | None = None,
    factor_loadings: pd.DataFrame | None = None,
) -> OptimizationResult:
    """``optimize`` entry for ``method: resampled``: Michaud's resampled portfolio under ``spec.constraints``.

    ``spec.n_resamples`` draws seeded by ``spec.seed``, each as long as the estimation window (the last
    ``spec.lookback_days`` rows of ``returns``, or ``spec.lookback_days`` without returns). ``method_params``:
    ``sampling`` (``"parametric"`` or ``"bootstrap"``), ``portfolio`` (``"max_sharpe"`` or a rank), ``n_points``
    (default ``spec.frontier_points``), ``frontier`` (True to attach the resampled frontier, evaluated with
    ``moments``, as ``result.frontier``).

    Raises
    ------
    SpecificationError
        Unknown parameters, no window length, bootstrap without returns.
    InfeasibleError, UnboundedError, SolverFailedError
        From the per-draw problems.
    """
    start = time.perf_counter()
    params = method_params(spec, _RESAMPLED_PARAMS)
    window = None
    if returns is not None:
        window = returns.iloc[-spec.lookback_days :] if spec.lookback_days is not None else returns
    common = {
        "n_points": int(params.get("n_points", spec.frontier_points)),
        "n_resamples": spec.n_resamples,
        "n_observations": len(window) if window is not None else spec.lookback_days,
        "returns": window,
        "sampling": params.get("sampling", "parametric"),
        "seed": spec.seed,
        "periods_per_year": spec.periods_per_year,
        "current_weights": current_weights,
        "benchmark_weights": benchmark_weights,
        "factor_loadings": factor_loadings,
    }
    portfolio = params.get("portfolio", "max_sharpe")
    weights, used = resampled_portfolio(
        moments,
        spec.constraints,
        portfolio=portfolio,
        risk_free_rate=spec.risk_free_rate,
        **common,
    )
    frontier = None
    if params.get("frontier", False):
        resampled = resampled_frontier(moments, spec.constraints, **common)
        points = tuple(
            portfolio_result(
                row,
                moments,
                method="resampled_frontier",
                diagnostics=SolverDiagnostics(solver="resampled-mean-variance", status="optimal"),
                risk_free_rate=spec.risk_free_rate,
            )
            for _, row in resampled.weights.iterrows()
        )
        frontier = EfficientFrontier(points=points)
    diagnostics = SolverDiagnostics(
        solver="resampled-mean-variance",
        status="optimal",
        solve_seconds=time.perf_counter() - start,
        messages=(f"{used} of {spec.n_resamples} draws averaged",),
    )
    extras = {"portfolio": portfolio, "draws_used": used, "n_resamples": spec.n_resamples, "seed": spec.seed}
    return portfolio_result(
        weights,
        moments,
        method="resampled",
        diagnostics=diagnostics,
        risk_free_rate=spec.risk_free_rate,
        frontier=frontier,
        extras=extras | {"sampling": common["sampling"]},
    )


register_method("resampled", resampled_method)
