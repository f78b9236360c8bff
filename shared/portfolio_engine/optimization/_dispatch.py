"""``optimize(spec, moments)``: one entry point for every method, through a registry of method functions.

A method function has the signature::

    fn(spec: PortfolioSpec, moments: Moments, returns: pd.DataFrame | None, *,
       current_weights: pd.Series | None, benchmark_weights: pd.Series | None,
       factor_loadings: pd.DataFrame | None) -> OptimizationResult

``moments`` is already restricted to ``spec.universe`` (and ``spec`` already switched to the regime's policy);
``returns`` (simple per-period returns, dates x assets) is passed through for scenario-based methods (CVaR,
resampling, HRP) and may be None. A method reads its own options from ``spec`` (``cvar_alpha``,
``n_resamples``, ``seed``, ``method_params``...), honours ``spec.constraints`` as far as it can, and builds its
result with :func:`portfolio_engine.optimization.result.portfolio_result`. Register it with
:func:`register_method`; the mean-variance methods are registered here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from portfolio_engine.exceptions import SpecificationError
from portfolio_engine.optimization._frontier import efficient_frontier
from portfolio_engine.optimization.mean_variance import MeanVarianceOptimizer
from portfolio_engine.optimization.moments import Moments
from portfolio_engine.optimization.result import OptimizationResult
from portfolio_engine.optimization.spec import METHODS, SHARED_METHOD_PARAMS, PortfolioSpec

__all__ = ["METHOD_REGISTRY", "MethodFunction", "method_params", "optimize", "register_method"]

MethodFunction = Callable[..., OptimizationResult]

#: Method name -> function (see the module docstring for the signature).
METHOD_REGISTRY: dict[str, MethodFunction] = {}


def register_method(name: str, function: MethodFunction, *, replace: bool = False) -> None:
    """Make ``optimize`` dispatch ``spec.method == name`` to ``function``.

    Raises
    ------
    SpecificationError
        ``name`` is not a method a spec can name, or is registered already (without ``replace=True``).
    """
    if name not in METHODS:
        raise SpecificationError(f"Cannot register unknown method {name!r}.", hint=f"Methods: {list(METHODS)}.")
    if name in METHOD_REGISTRY and not replace and METHOD_REGISTRY[name] is not function:
        raise SpecificationError(f"Method {name!r} is registered already.", hint="Pass replace=True to override it.")
    METHOD_REGISTRY[name] = function


def method_params(spec: PortfolioSpec, reads: frozenset[str]) -> dict[str, Any]:
    """``spec.method_params`` for a method that reads the keys ``reads`` (shared keys are dropped).

    Raises
    ------
    SpecificationError
        A key the method does not read (a typo would otherwise be ignored silently); the message names it
        and the keys the method reads.
    """
    params = {k: v for k, v in spec.method_params.items() if k not in SHARED_METHOD_PARAMS}
    if unknown := sorted(set(params) - reads):
        raise SpecificationError(
            f"{spec.method} does not read method_params {unknown}.",
            hint=f"{spec.method} reads {sorted(reads) or 'none'} (and {sorted(SHARED_METHOD_PARAMS)}, read outside "
            "it); a regime policy that changes the method can set its own method_params.",
        )
    return params


def restrict(moments: Moments, universe: list[str] | None) -> Moments:
    """``moments`` on ``universe`` (in that order), or unchanged when ``universe`` is None.

    Raises
    ------
    SpecificationError
        The universe names assets the moments do not have.
    """
    if universe is None or list(moments.mu.index) == universe:
        return moments
    missing = [a for a in universe if a not in moments.mu.index]
    if missing:
        raise SpecificationError(
            f"The spec's universe names {missing}, which the moments do not cover.",
            hint="Estimate the moments on the spec's universe, or remove those assets.",
        )
    return Moments(mu=moments.mu.loc[universe], cov=moments.cov.loc[universe, universe])


def optimize(
    spec: PortfolioSpec,
    moments: Moments,
    *,
    returns: pd.DataFrame | None = None,
    current_weights: pd.Series | None = None,
    benchmark_weights: pd.Series | None = None,
    factor_loadings: pd.DataFrame | None = None,
    regime: str | None = None,
    state_names: Sequence[str] | None = None,
) -> OptimizationResult:
    """Optimize the portfolio ``spec`` describes, with ``moments`` (annual units).

    Parameters
    ----------
    spec : PortfolioSpec
    moments : Moments
        Covering at least ``spec.universe``.
    returns : DataFrame of shape (n_observations, n_assets), optional
        Per-period returns, for the scenario-based methods.
    current_weights : Series, optional
        Holdings (turnover, transaction costs).
    benchmark_weights : Series, optional
        For a tracking-error limit.
    factor_loadings : DataFrame of shape (n_assets, n_factors), optional
        For factor-exposure bounds.
    regime : str, optional
        The current regime's state name: its policy in ``spec.regime_policies`` (by exact state name, else by
        the state's role) applies when ``spec.regime_aware``.
    state_names : sequence of str, optional
        The regime model's states, calmest first: they give ``regime`` its role by volatility rank (see
        :meth:`PortfolioSpec.regime_policy`). Without them only a role-named state (``calm``, ``normal``,
        ``turbulent``) or an exact ``state_<i>`` key finds its policy.

    Returns
    -------
    OptimizationResult
        For ``efficient_frontier``: the frontier point with the best Sharpe ratio, with the whole frontier
        in ``result.frontier``.

    Raises
    ------
    SpecificationError
        A method no module has registered, a universe the moments (or the returns) do not cover, or a
        ``regime`` that is not one of ``state_names``.
    InfeasibleError, UnboundedError, SolverFailedError
        From the method.

    Notes
    -----
    Each method is a function registered with :func:`register_method`, called as::

        fn(spec, moments, returns, *, current_weights=None, benchmark_weights=None,
           factor_loadings=None) -> OptimizationResult

    with ``spec`` already switched to the regime's policy and ``moments``/``returns`` restricted to
    ``spec.universe``.
    """
    spec = spec.for_regime(regime, state_names)
    function = METHOD_REGISTRY.get(spec.method)
    if function is None:
        raise SpecificationError(
            f"Method {spec.method!r} is not available: no module registered it.",
            hint=f"Registered methods: {sorted(METHOD_REGISTRY)}. Import its module (or register_method).",
        )
    if returns is not None and spec.universe is not None:
        if missing := [a for a in spec.universe if a not in returns.columns]:
            raise SpecificationError(
                f"returns lack the universe's assets {missing}.",
                hint="Pass returns with a column for every asset of spec.universe.",
            )
        returns = returns[spec.universe]
    return function(
        spec,
        restrict(moments, spec.universe),
        returns,
        current_weights=current_weights,
        benchmark_weights=benchmark_weights,
        factor_loadings=factor_loadings,
    )


def _mean_variance(
    spec: PortfolioSpec, moments: Moments, returns: pd.DataFrame | None, **context: Any
) -> OptimizationResult:
    optimizer = MeanVarianceOptimizer(
        spec.method,
        spec.constraints,
        risk_aversion=spec.risk_aversion,
        risk_free_rate=spec.risk_free_rate,
        target_return=spec.target_return,
        target_volatility=spec.target_volatility,
        periods_per_year=spec.periods_per_year,
    )
    return optimizer.solve(moments, **context)


def _frontier(
    spec: PortfolioSpec, moments: Moments, returns: pd.DataFrame | None, **context: Any
) -> OptimizationResult:
    frontier = efficient_frontier(
        moments, spec.constraints, n_points=spec.frontier_points, risk_free_rate=spec.risk_free_rate, **context
    )
    return dataclasses.replace(frontier.best_sharpe(), frontier=frontier)


for _name in ("min_variance", "max_sharpe", "target_return", "target_risk", "max_utility"):
    register_method(_name, _mean_variance)
register_method("efficient_frontier", _frontier)
