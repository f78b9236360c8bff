"""Mean-variance optimization: minimum variance, maximum Sharpe, target return, target risk, maximum utility.

Two ways in:

* :class:`MeanVarianceOptimizer`, a scikit-learn estimator: ``fit(returns)`` estimates the moments and
  solves; :meth:`~MeanVarianceOptimizer.solve` re-solves with new moments and
  :meth:`~MeanVarianceOptimizer.solve_weights` is the fast path of a backtest (arrays in, arrays out). The
  problem is built once and re-solved: through Clarabel's API directly when every constraint is linear, else
  a cvxpy problem with Parameters (DPP).
* plain functions :func:`min_variance`, :func:`max_sharpe`, :func:`efficient_return`,
  :func:`efficient_risk`, :func:`max_utility` returning an :class:`OptimizationResult`.

Objectives, scaling and the maximum-Sharpe reformulation are described in
:mod:`portfolio_engine.optimization._mv_cvx`. Transaction costs (``Constraints.transaction_cost_bps``) are
charged once against the annual expected return of every objective and added to the minimum-variance
objective; turnover, tracking-error and factor-exposure limits apply to every objective.

If no feasible portfolio has an expected return above the risk-free rate, the Sharpe ratio has no positive
maximum: :func:`max_sharpe` raises :class:`InfeasibleError` with ``constraints == ["risk_free_rate"]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from portfolio_engine.exceptions import SpecificationError
from portfolio_engine.optimization._mv_cvx import OBJECTIVES
from portfolio_engine.optimization._mv_engine import MeanVarianceEngine, arrays_of, request_arrays
from portfolio_engine.optimization.constraints import Constraints, ResolvedConstraints
from portfolio_engine.optimization.moments import Moments, estimate_moments
from portfolio_engine.optimization.result import OptimizationResult, result_from_arrays

__all__ = [
    "OBJECTIVES",
    "MeanVarianceOptimizer",
    "efficient_return",
    "efficient_risk",
    "max_sharpe",
    "max_utility",
    "min_variance",
]

Weights = Mapping[str, float] | pd.Series | None

_DEFAULT_CONSTRAINTS = Constraints()


class MeanVarianceOptimizer(BaseEstimator):
    """Mean-variance portfolio optimizer (scikit-learn estimator), built once and re-solved.

    Parameters
    ----------
    objective : str, default "min_variance"
        ``min_variance``, ``max_sharpe``, ``target_return``, ``target_risk``, ``max_utility`` or ``max_return``.
    constraints : Constraints, optional
        Default ``Constraints()`` (long-only, fully invested).
    risk_aversion : float, default 1.0
        ``lambda`` of ``max_utility``.
    risk_free_rate : float, default 0.0
        Annual, for ``max_sharpe`` and the reported Sharpe ratio.
    target_return : float, optional
        Annual (``target_return``).
    target_volatility : float, optional
        Annual (``target_risk``).
    mean, covariance : str, default "historical", "sample"
        Estimators used by :meth:`fit` (see :func:`estimate_moments`).
    periods_per_year : int, default 252
    solvers : sequence of str, optional
        cvxpy fallback chain; default ``("CLARABEL", "OSQP", "SCS")``.
    solver_options : mapping, optional
        Per-solver options, e.g. ``{"CLARABEL": {"max_iter": 50}}``.
    direct : bool, default True
        Call Clarabel directly when every constraint is linear.

    Attributes
    ----------
    moments_ : Moments
        Estimated by :meth:`fit`.
    result_ : OptimizationResult
        Of the last :meth:`fit` or :meth:`solve`.
    weights_ : Series of shape (n_assets,)
    diagnostics_ : SolverDiagnostics
        Of the last solve (including :meth:`solve_weights`).
    """

    def __init__(
        self,
        objective: str = "min_variance",
        constraints: Constraints | None = None,
        *,
        risk_aversion: float = 1.0,
        risk_free_rate: float = 0.0,
        target_return: float | None = None,
        target_volatility: float | None = None,
        mean: str = "historical",
        covariance: str = "sample",
        periods_per_year: int = 252,
        solvers: Sequence[str] | None = None,
        solver_options: Mapping[str, Mapping[str, Any]] | None = None,
        direct: bool = True,
    ) -> None:
        self.objective = objective
        self.constraints = constraints
        self.risk_aversion = risk_aversion
        self.risk_free_rate = risk_free_rate
        self.target_return = target_return
        self.target_volatility = target_volatility
        self.mean = mean
        self.covariance = covariance
        self.periods_per_year = periods_per_year
        self.solvers = solvers
        self.solver_options = solver_options
        self.direct = direct

    def fit(
        self,
        X: pd.DataFrame,
        y: object = None,
        *,
        current_weights: Weights = None,
        benchmark_weights: Weights = None,
        factor_loadings: pd.DataFrame | None = None,
    ) -> MeanVarianceOptimizer:
        """Estimate the moments from returns and solve.

        Parameters
        ----------
        X : DataFrame of shape (n_observations, n_assets)
            Simple per-period returns.
        y : ignored
        current_weights, benchmark_weights : Series or mapping, optional
        factor_loadings : DataFrame of shape (n_assets, n_factors), optional

        Returns
        -------
        MeanVarianceOptimizer
            ``self``.

        Raises
        ------
        SpecificationError, DataError, InfeasibleError, UnboundedError, SolverFailedError
            See :meth:`solve` and :func:`estimate_moments`.
        """
        self.moments_ = estimate_moments(
            X, mean=self.mean, covariance=self.covariance, periods_per_year=self.periods_per_year
        )
        self.solve(
            self.moments_,
            current_weights=current_weights,
            benchmark_weights=benchmark_weights,
            factor_loadings=factor_loadings,
        )
        return self

    def predict(self, X: pd.DataFrame) -> pd.Series:
        """Returns of the fitted portfolio, ``X @ weights_``.

        Parameters
        ----------
        X : DataFrame of shape (n_observations, n_assets)

        Returns
        -------
        Series of shape (n_observations,)
        """
        return (X[self.weights_.index] @ self.weights_).rename("portfolio")

    def __getstate__(self) -> dict[str, Any]:
        # Solver state (Clarabel settings, compiled cvxpy problems) is a cache: rebuilt on the next solve.
        state = super().__getstate__()
        return {k: v for k, v in state.items() if k not in ("_engine_cache", "_resolved_cache")}

    def _engine(self) -> MeanVarianceEngine:
        # Rebuilt when a parameter that shapes it changes (set_params), kept otherwise.
        key = (tuple(self.solvers or ()), repr(self.solver_options), self.direct)
        engine = getattr(self, "_engine_cache", None)
        if engine is None or engine[0] != key:
            built = MeanVarianceEngine(solvers=self.solvers, solver_options=self.solver_options, direct=self.direct)
            engine = (key, built)
            self._engine_cache = engine
        return engine[1]

    def _resolve(
        self, assets: tuple[str, ...], current: Weights, benchmark: Weights, loadings: pd.DataFrame | None
    ) -> ResolvedConstraints:
        constraints = self.constraints if self.constraints is not None else _DEFAULT_CONSTRAINTS
        if not isinstance(constraints, Constraints):
            raise SpecificationError(
                f"constraints must be a Constraints; got {type(constraints).__name__}.",
                hint="Build one with Constraints(...) or Constraints.model_validate(dict).",
            )
        if current is None and benchmark is None and loadings is None:
            # The hot path of a backtest: same universe, no context -> resolve once.
            cached = getattr(self, "_resolved_cache", None)
            if cached is not None and cached[0] is constraints and cached[1] == assets:
                return cached[2]
            resolved = constraints.resolve(assets)
            self._resolved_cache = (constraints, assets, resolved)
            return resolved
        return constraints.resolve(
            assets, current_weights=current, benchmark_weights=benchmark, factor_loadings=loadings
        )

    def _target(self) -> float | None:
        return self.target_volatility if self.objective == "target_risk" else self.target_return

    def solve_weights(
        self,
        mu: np.ndarray | pd.Series | None,
        cov: np.ndarray | pd.DataFrame,
        *,
        assets: Sequence[str] | None = None,
        current_weights: Weights = None,
        benchmark_weights: Weights = None,
        factor_loadings: pd.DataFrame | None = None,
    ) -> np.ndarray:
        """Optimal weights as an array: the fast path for walk-forward backtests.

        Parameters
        ----------
        mu : ndarray of shape (n_assets,), Series or None
            Annual expected returns (None means zeros: enough for ``min_variance``). A Series is aligned to the
            assets by label; an array is taken in their order.
        cov : ndarray or DataFrame of shape (n_assets, n_assets)
            Annual covariance.
        assets : sequence of str, optional
            Asset names in the arrays' order; default ``cov``'s index, else ``"0", "1", ...``.
        current_weights, benchmark_weights, factor_loadings : optional
            As in :meth:`solve`.

        Returns
        -------
        ndarray of shape (n_assets,)

        Raises
        ------
        SpecificationError, InfeasibleError, UnboundedError, SolverFailedError
            As :meth:`solve`.
        """
        names, mu_values, cov_values = request_arrays(mu, cov, assets)
        resolved = self._resolve(names, current_weights, benchmark_weights, factor_loadings)
        w, self.diagnostics_ = self._engine().solve(
            self.objective,
            mu_values,
            cov_values,
            resolved,
            risk_aversion=self.risk_aversion,
            risk_free_rate=self.risk_free_rate,
            target=self._target(),
        )
        return w

    def solve(
        self,
        moments: Moments,
        *,
        current_weights: Weights = None,
        benchmark_weights: Weights = None,
        factor_loadings: pd.DataFrame | None = None,
    ) -> OptimizationResult:
        """Solve with ``moments`` (re-using the problem built by earlier calls).

        Parameters
        ----------
        moments : Moments
            Annual ``mu`` (Series) and ``cov`` (DataFrame); the universe is ``mu``'s index.
        current_weights : Series or mapping, optional
            Holdings, for turnover and transaction costs (all cash when None).
        benchmark_weights : Series or mapping, optional
            For a tracking-error limit.
        factor_loadings : DataFrame of shape (n_assets, n_factors), optional
            For factor-exposure bounds.

        Returns
        -------
        OptimizationResult

        Raises
        ------
        SpecificationError
            Bad parameters or constraints that do not fit the universe.
        InfeasibleError
            No portfolio satisfies the constraints (``constraints`` names the families involved), or for
            ``max_sharpe`` none beats the risk-free rate.
        UnboundedError
            Nothing bounds the objective (``constraints`` names the missing limits).
        SolverFailedError
            Every solver failed.
        """
        assets, mu, cov = arrays_of(moments)
        w = self.solve_weights(
            mu,
            cov,
            assets=tuple(str(a) for a in assets),
            current_weights=current_weights,
            benchmark_weights=benchmark_weights,
            factor_loadings=factor_loadings,
        )
        self.result_ = result_from_arrays(
            w,
            mu,
            cov,
            assets,
            method=self.objective,
            diagnostics=self.diagnostics_,
            risk_free_rate=self.risk_free_rate,
        )
        self.weights_ = self.result_.weights
        return self.result_


def _run(moments: Moments, objective: str, constraints: Constraints | None, **kwargs: Any) -> OptimizationResult:
    context = {k: kwargs.pop(k, None) for k in ("current_weights", "benchmark_weights", "factor_loadings")}
    return MeanVarianceOptimizer(objective, constraints, **kwargs).solve(moments, **context)


def min_variance(moments: Moments, constraints: Constraints | None = None, **kwargs: Any) -> OptimizationResult:
    """Minimum-variance portfolio (plus the transaction-cost penalty, if any).

    Parameters
    ----------
    moments : Moments
    constraints : Constraints, optional
    **kwargs
        ``risk_free_rate`` (for the reported Sharpe ratio), ``current_weights``, ``benchmark_weights``,
        ``factor_loadings``, ``solvers``, ``solver_options``, ``direct``.

    Returns
    -------
    OptimizationResult

    Raises
    ------
    SpecificationError, InfeasibleError, UnboundedError, SolverFailedError
        See :meth:`MeanVarianceOptimizer.solve`.
    """
    return _run(moments, "min_variance", constraints, **kwargs)


def max_sharpe(
    moments: Moments, constraints: Constraints | None = None, *, risk_free_rate: float = 0.0, **kwargs: Any
) -> OptimizationResult:
    """Maximum Sharpe ratio (tangency) portfolio, by the Charnes-Cooper convex reformulation.

    Raises
    ------
    InfeasibleError
        With ``constraints == ["risk_free_rate"]`` when no feasible portfolio beats ``risk_free_rate``.
    SpecificationError
        Without a positive budget.
    """
    return _run(moments, "max_sharpe", constraints, risk_free_rate=risk_free_rate, **kwargs)


def efficient_return(
    moments: Moments, target_return: float, constraints: Constraints | None = None, **kwargs: Any
) -> OptimizationResult:
    """Minimum variance with an expected return (net of costs) of at least ``target_return`` (annual).

    Raises
    ------
    InfeasibleError
        The target is above what the constraints allow (``constraints`` includes ``"target_return"``).
    """
    return _run(moments, "target_return", constraints, target_return=target_return, **kwargs)


def efficient_risk(
    moments: Moments, target_volatility: float, constraints: Constraints | None = None, **kwargs: Any
) -> OptimizationResult:
    """Maximum expected return with a volatility of at most ``target_volatility`` (annual; a second-order cone).

    Raises
    ------
    InfeasibleError
        The target is below the minimum attainable volatility (``"target_volatility"`` is named).
    """
    return _run(moments, "target_risk", constraints, target_volatility=target_volatility, **kwargs)


def max_utility(
    moments: Moments, constraints: Constraints | None = None, *, risk_aversion: float = 1.0, **kwargs: Any
) -> OptimizationResult:
    """Maximum quadratic utility ``mu'w - lambda/2 w' Sigma w`` (minus costs), ``lambda = risk_aversion``.

    Raises
    ------
    UnboundedError
        A singular covariance leaves a direction of positive return unpenalised and unconstrained.
    """
    return _run(moments, "max_utility", constraints, risk_aversion=risk_aversion, **kwargs)
