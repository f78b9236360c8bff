"""Risk parity: equal risk contributions and arbitrary risk budgets, long-only, by Spinu's convex program.

Risk contributions of weights ``w`` under covariance ``Sigma`` are ``RC_i = w_i (Sigma w)_i``; they sum to the
variance. A risk-budgeting portfolio has ``RC_i / sum(RC) = b_i`` for budgets ``b`` summing to one (equal
budgets give the equal-risk-contribution portfolio). Spinu (2013) showed that the minimiser of the strictly
convex function

    ``f(y) = 1/2 y' Sigma y - sum_i b_i log y_i``,  ``y > 0``,

satisfies ``y_i (Sigma y)_i = b_i``: normalising ``y`` to the budget gives the unique long-only solution.
We minimise ``f`` by Newton's method with a backtracking line search, on the correlation matrix (the change of
variable ``x_i = sigma_i y_i`` only shifts ``f`` by a constant), so the iteration is scale-free and converges
quadratically to machine precision.

An asset with a zero risk budget is excluded: it gets weight zero, which gives it a zero risk contribution,
and the others are solved among themselves. (With ``b_i = 0`` the barrier vanishes and ``f`` has no minimiser.)

References
----------
.. [1] Spinu, F. (2013). "An Algorithm for Computing Risk Parity Weights". SSRN 2297383.
.. [2] Maillard, S., Roncalli, T. and Teiletche, J. (2010). "The Properties of Equally Weighted Risk
   Contribution Portfolios". Journal of Portfolio Management 36(4).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from portfolio_engine.exceptions import SolverFailedError, SpecificationError
from portfolio_engine.optimization._checks import check_covariance
from portfolio_engine.optimization._dispatch import method_params, register_method
from portfolio_engine.optimization._long_only import check_long_only_budget
from portfolio_engine.optimization.moments import Moments
from portfolio_engine.optimization.result import OptimizationResult, SolverDiagnostics, portfolio_result
from portfolio_engine.optimization.spec import PortfolioSpec

__all__ = ["DEFAULT_TOLERANCE", "RiskParitySolution", "risk_budgeting_weights", "risk_parity_method"]

#: Largest relative gap |RC_i / sum(RC) - b_i| / b_i accepted from the Newton iteration.
DEFAULT_TOLERANCE = 1e-10


@dataclass(frozen=True)
class RiskParitySolution:
    """Weights and diagnostics of a risk-budgeting solve.

    Attributes
    ----------
    weights : Series of shape (n_assets,)
        Long-only weights summing to the budget; zero for assets with a zero risk budget.
    iterations : int
        Newton steps taken.
    max_relative_error : float
        ``max_i |RC_i / sum(RC) - b_i| / b_i`` over assets with a positive budget.
    """

    weights: pd.Series
    iterations: int
    max_relative_error: float


def _budgets(risk_budget: pd.Series | None, assets: pd.Index) -> np.ndarray:
    if risk_budget is None:
        return np.full(len(assets), 1.0 / len(assets))
    if not risk_budget.index.sort_values().equals(assets.sort_values()):
        raise SpecificationError(
            f"risk_budget names {list(risk_budget.index)}, the covariance {list(assets)}.",
            hint="Give one risk budget per asset (0 excludes an asset).",
        )
    b = risk_budget.reindex(assets).to_numpy(dtype=float)
    if not np.isfinite(b).all() or (b < 0).any() or b.sum() <= 0:
        raise SpecificationError(
            f"Risk budgets must be finite, non-negative and not all zero; got {b.tolist()}.",
            hint="Pass budgets such as 1/n each; they are normalised to sum to one.",
        )
    return b / b.sum()


def _newton(corr: np.ndarray, b: np.ndarray, tol: float, max_iter: int) -> tuple[np.ndarray, int]:
    """Minimise ``1/2 x'Cx - b'log x`` from ``x0 = b / sqrt(b'Cb)``; return ``x`` and the iteration count."""

    def objective(x: np.ndarray) -> float:
        return float(0.5 * x @ corr @ x - b @ np.log(x))

    x = b / np.sqrt(b @ corr @ b)
    value = objective(x)
    for iteration in range(1, max_iter + 1):
        cx = corr @ x
        if np.max(np.abs(x * cx - b) / b) <= 0.01 * tol:
            return x, iteration - 1
        gradient = cx - b / x
        hessian = corr + np.diag(b / x**2)
        step = np.linalg.solve(hessian, gradient)
        decrement = float(gradient @ step)
        t = 1.0
        # Halve until the step stays inside x > 0 and decreases f enough (Armijo, c = 1/4). Near the optimum the
        # decrease drops below f's rounding, so a small Newton decrement takes the full step (quadratic phase).
        while True:
            candidate = x - t * step
            if (candidate > 0).all():
                new_value = objective(candidate)
                if decrement < 1e-10 or new_value <= value - 0.25 * t * decrement:
                    break
            t *= 0.5
            if t < 1e-20:
                return x, iteration
        x, value = candidate, new_value
    return x, max_iter


def risk_budgeting_weights(
    cov: pd.DataFrame,
    risk_budget: pd.Series | None = None,
    *,
    budget: float = 1.0,
    tol: float = DEFAULT_TOLERANCE,
    max_iter: int = 100,
) -> RiskParitySolution:
    """Long-only weights whose risk contributions are proportional to ``risk_budget`` (equal if None).

    Parameters
    ----------
    cov : DataFrame of shape (n_assets, n_assets)
        Covariance, symmetric positive definite on the assets with a positive budget (any units).
    risk_budget : Series of shape (n_assets,), optional
        Non-negative budgets indexed by asset, normalised to sum to one; zero excludes an asset (weight 0).
        None gives equal risk contributions.
    budget : float, default 1.0
        Sum of the weights (> 0).
    tol : float, default 1e-10
        Largest accepted relative error of any risk contribution share against its budget.
    max_iter : int, default 100
        Newton iteration limit (a 20-asset problem takes about 6 to 10).

    Returns
    -------
    RiskParitySolution
        Weights in ``cov``'s asset order and solver diagnostics.

    Raises
    ------
    SpecificationError
        If budgets are invalid, ``budget <= 0``, or the covariance is not positive definite on the budgeted assets.
    SolverFailedError
        If Newton's method does not reach ``tol`` within ``max_iter`` steps.

    References
    ----------
    .. [1] Spinu, F. (2013). "An Algorithm for Computing Risk Parity Weights". SSRN 2297383.
    """
    sigma = check_covariance(cov)
    b = _budgets(risk_budget, cov.index)
    if not np.isfinite(budget) or budget <= 0:
        raise SpecificationError(
            f"Risk parity is long-only: the budget must be > 0; got {budget!r}.", hint="Use budget=1.0."
        )
    active = b > 0
    sub = sigma[np.ix_(active, active)]
    scale = np.sqrt(np.diag(sub))
    if not (scale > 0).all():
        riskless = [str(a) for a, v in zip(cov.index[active], scale, strict=True) if not v > 0]
        raise SpecificationError(
            f"Assets with a positive risk budget have zero variance: {riskless}.",
            hint="Drop riskless assets or give them a zero risk budget.",
        )
    corr = sub / np.outer(scale, scale)
    try:
        np.linalg.cholesky(corr)
    except np.linalg.LinAlgError:
        smallest = float(np.linalg.eigvalsh(corr)[0])
        raise SpecificationError(
            "The covariance is not positive definite on the assets with a positive risk budget (smallest "
            f"eigenvalue of their correlation matrix {smallest:.3g}; duplicated or collinear assets?).",
            hint="Use a shrunk (Ledoit-Wolf) or repaired covariance, or drop redundant assets.",
        ) from None
    x, iterations = _newton(corr, b[active], tol, max_iter)
    weights = np.zeros(len(b))
    weights[active] = x / scale
    weights *= budget / weights.sum()
    shares = weights * (sigma @ weights)
    shares /= shares.sum()
    error = float(np.max(np.abs(shares[active] - b[active]) / b[active]))
    if not error <= tol:
        raise SolverFailedError(
            f"Risk parity Newton iteration stopped at relative error {error:.3g} > tol {tol:.3g} "
            f"after {iterations} steps.",
            hint="Raise max_iter or check the covariance's conditioning (shrink it).",
        )
    return RiskParitySolution(
        weights=pd.Series(weights, index=cov.index, name="weight"),
        iterations=iterations,
        max_relative_error=error,
    )


def risk_parity_method(
    spec: PortfolioSpec, moments: Moments, returns: pd.DataFrame | None = None, **context: Any
) -> OptimizationResult:
    """``optimize`` entry for ``method: risk_parity``: risk budgets from ``spec.constraints.risk_budgets``.

    Equal risk contributions when no budgets are given. ``spec.method_params`` may set ``tol`` and ``max_iter``.
    ``returns`` and the solve-time ``context`` are not used.

    Raises
    ------
    SpecificationError
        A constraint other than long-only, a positive budget and risk budgets; bad budgets or covariance.
    SolverFailedError
        Newton's method did not reach the tolerance.
    """
    start = time.perf_counter()
    budget = check_long_only_budget(spec.constraints, "risk_parity", risk_budgets=True)
    params = method_params(spec, frozenset({"tol", "max_iter"}))
    budgets = spec.constraints.risk_budgets
    solution = risk_budgeting_weights(
        moments.cov,
        None if budgets is None else pd.Series(budgets, dtype=float),
        budget=budget,
        tol=float(params.get("tol", DEFAULT_TOLERANCE)),
        max_iter=int(params.get("max_iter", 100)),
    )
    diagnostics = SolverDiagnostics(
        solver="newton-spinu",
        status="optimal",
        iterations=solution.iterations,
        solve_seconds=time.perf_counter() - start,
        active_constraints=("budget",) + (("risk_budgets",) if budgets is not None else ()),
    )
    return portfolio_result(
        solution.weights,
        moments,
        method="risk_parity",
        diagnostics=diagnostics,
        risk_free_rate=spec.risk_free_rate,
        extras={"max_relative_error": solution.max_relative_error},
    )


register_method("risk_parity", risk_parity_method)
