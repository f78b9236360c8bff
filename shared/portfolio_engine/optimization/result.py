"""What an optimization returns: weights, their statistics and how the solver got there.

:class:`OptimizationResult` is frozen and JSON-ready (``to_dict``). Every method builds it the same way,
through :func:`portfolio_result`, so the statistics are always computed from the weights and the moments the
method was given (annual units):

* ``expected_return = mu' w``, ``volatility = sqrt(w' Sigma w)``,
  ``sharpe = (mu - risk_free_rate)' w / volatility``: the excess return of the weights with what they leave
  (``1 - sum(w)``) in cash at the risk-free rate. With a budget of one this is ``(expected_return - rf) /
  volatility``; it is the ratio :func:`~portfolio_engine.optimization.max_sharpe` maximises for any budget
  (a budget of 0.5 halves the return and the volatility and keeps the ratio);
* ``risk_contributions_i = w_i (Sigma w)_i / w' Sigma w``: fractions of the variance that sum to one
  (Euler's allocation; negative for a hedge).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from portfolio_engine.exceptions import SpecificationError

if TYPE_CHECKING:
    from portfolio_engine.optimization.moments import Moments

__all__ = [
    "EfficientFrontier",
    "OptimizationResult",
    "SolverDiagnostics",
    "portfolio_result",
    "portfolio_stats",
    "result_from_arrays",
]


def _json_float(value: float | None) -> float | None:
    """A float for JSON: NaN and infinities become None (JSON has neither)."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, pd.Series):
        return {str(k): _json_float(float(v)) for k, v in value.items()}
    if isinstance(value, pd.DataFrame):
        return {str(c): _json_value(value[c]) for c in value.columns}
    if isinstance(value, np.ndarray):
        return [_json_value(v) for v in value.tolist()]
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, bool | str) or value is None:
        return value
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return _json_float(float(value))
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return str(value)


@dataclass(frozen=True)
class SolverDiagnostics:
    """How a solve went.

    Attributes
    ----------
    solver : str
        Solver that produced the weights (``"CLARABEL"``, ``"SCS"``, ``"CLARABEL-direct"``, ``"closed-form"``...).
    status : str
        ``"optimal"`` for an accepted solution (other values only appear in messages of failed attempts).
    iterations : int or None
        Solver iterations (summed over branch-and-bound nodes when there were several).
    solve_seconds : float
        Wall time of the solve, including fallbacks and polishing.
    objective : float or None
        Objective value in the solver's (scaled) units.
    fallback_used : bool
        True when the first solver in the chain did not produce the accepted solution.
    active_constraints : tuple of str
        Constraint families binding at the solution (``"budget"``, ``"weight_bounds"``, ``"group_bounds"``...).
    messages : tuple of str
        Notes: failed attempts of earlier solvers, polishing, branch-and-bound node counts.
    """

    solver: str
    status: str
    iterations: int | None = None
    solve_seconds: float = 0.0
    objective: float | None = None
    fallback_used: bool = False
    active_constraints: tuple[str, ...] = ()
    messages: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return {
            "solver": self.solver,
            "status": self.status,
            "iterations": self.iterations,
            "solve_seconds": _json_float(self.solve_seconds),
            "objective": _json_float(self.objective),
            "fallback_used": self.fallback_used,
            "active_constraints": list(self.active_constraints),
            "messages": list(self.messages),
        }


@dataclass(frozen=True, eq=False)
class OptimizationResult:
    """Weights of one optimized portfolio and their statistics (annual units).

    Attributes
    ----------
    weights : Series of shape (n_assets,)
        Weights indexed by asset.
    expected_return, volatility, sharpe : float
        ``mu' w``, ``sqrt(w' Sigma w)`` and ``(mu - risk_free_rate)' w / volatility`` (NaN at zero volatility;
        ``(mu' w - risk_free_rate) / volatility`` for fully invested weights).
    risk_contributions : Series of shape (n_assets,)
        ``w_i (Sigma w)_i / w' Sigma w``, summing to one (zeros for a zero-variance portfolio).
    method : str
        The method that produced the weights (``"min_variance"``, ``"max_sharpe"``...).
    diagnostics : SolverDiagnostics
    risk_free_rate : float, default 0.0
        The rate the Sharpe ratio is measured against.
    frontier : EfficientFrontier or None
        The whole frontier, for ``method="efficient_frontier"`` (the result itself is its best-Sharpe point).
    extras : mapping
        Method-specific outputs (for example a CVaR value), read-only; JSON-ready when values are floats,
        Series, arrays or mappings of them.
    """

    weights: pd.Series
    expected_return: float
    volatility: float
    sharpe: float
    risk_contributions: pd.Series
    method: str
    diagnostics: SolverDiagnostics
    risk_free_rate: float = 0.0
    frontier: EfficientFrontier | None = None
    extras: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Frozen means frozen all the way down: copies the caller cannot mutate through us.
        object.__setattr__(self, "extras", MappingProxyType(dict(self.extras)))

    def __getstate__(self) -> dict[str, Any]:
        # A mappingproxy does not pickle: store a plain dict, re-wrap on load.
        return {**self.__dict__, "extras": dict(self.extras)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)
        object.__setattr__(self, "extras", MappingProxyType(dict(state.get("extras", {}))))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (NaN and infinities become None)."""
        out: dict[str, Any] = {
            "method": self.method,
            "weights": _json_value(self.weights),
            "expected_return": _json_float(self.expected_return),
            "volatility": _json_float(self.volatility),
            "sharpe": _json_float(self.sharpe),
            "risk_free_rate": _json_float(self.risk_free_rate),
            "risk_contributions": _json_value(self.risk_contributions),
            "diagnostics": self.diagnostics.to_dict(),
            "extras": _json_value(dict(self.extras)),
        }
        if self.frontier is not None:
            out["frontier"] = self.frontier.to_dict()
        return out


@dataclass(frozen=True, eq=False)
class EfficientFrontier:
    """Portfolios along the mean-variance efficient frontier, by increasing target return.

    Attributes
    ----------
    points : tuple of OptimizationResult
        One result per frontier point.
    """

    points: tuple[OptimizationResult, ...]

    @property
    def weights(self) -> pd.DataFrame:
        """DataFrame of shape (n_points, n_assets): one row of weights per point."""
        return pd.DataFrame([p.weights for p in self.points]).reset_index(drop=True)

    @property
    def expected_returns(self) -> np.ndarray:
        """Array of shape (n_points,)."""
        return np.array([p.expected_return for p in self.points])

    @property
    def volatilities(self) -> np.ndarray:
        """Array of shape (n_points,)."""
        return np.array([p.volatility for p in self.points])

    @property
    def sharpe_ratios(self) -> np.ndarray:
        """Array of shape (n_points,)."""
        return np.array([p.sharpe for p in self.points])

    def best_sharpe(self) -> OptimizationResult:
        """The point with the highest Sharpe ratio (the grid's approximation of the tangency portfolio)."""
        ratios = np.nan_to_num(self.sharpe_ratios, nan=-np.inf)
        return self.points[int(np.argmax(ratios))]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary: per-point returns, volatilities, Sharpe ratios and weights."""
        return {
            "expected_returns": _json_value(self.expected_returns),
            "volatilities": _json_value(self.volatilities),
            "sharpe_ratios": _json_value(self.sharpe_ratios),
            "weights": [_json_value(p.weights) for p in self.points],
        }


def portfolio_stats(
    weights: np.ndarray, mu: np.ndarray, cov: np.ndarray, risk_free_rate: float = 0.0
) -> tuple[float, float, float, np.ndarray]:
    """Expected return, volatility, Sharpe ratio and variance shares of a weight vector (numpy, no checks).

    Parameters
    ----------
    weights, mu : ndarray of shape (n_assets,)
    cov : ndarray of shape (n_assets, n_assets)
    risk_free_rate : float, default 0.0

    Returns
    -------
    tuple of (float, float, float, ndarray of shape (n_assets,))
        ``(mu'w, sqrt(w'Sigma w), (mu - rf)'w / sqrt(w'Sigma w), w_i (Sigma w)_i / w'Sigma w)``; the Sharpe
        ratio is NaN and the shares are zero when the variance is zero.
    """
    marginal = cov @ weights
    variance = float(weights @ marginal)
    expected = float(mu @ weights)
    volatility = math.sqrt(max(variance, 0.0))
    if variance > 0.0:
        shares = weights * marginal / variance
        # The rest of the capital, 1 - sum(w), sits in cash at the risk-free rate: the excess return is (mu - rf)'w.
        sharpe = (expected - risk_free_rate * float(weights.sum())) / volatility
    else:
        shares = np.zeros_like(weights)
        sharpe = math.nan
    return expected, volatility, sharpe, shares


def portfolio_result(
    weights: pd.Series | np.ndarray,
    moments: Moments,
    *,
    method: str,
    diagnostics: SolverDiagnostics,
    risk_free_rate: float = 0.0,
    frontier: EfficientFrontier | None = None,
    extras: Mapping[str, Any] | None = None,
) -> OptimizationResult:
    """Build an :class:`OptimizationResult`, computing the statistics from the weights and the moments.

    Parameters
    ----------
    weights : Series of shape (n_assets,) or ndarray of shape (n_assets,)
        A Series is aligned to ``moments.mu``'s assets (it must name exactly those); an array is taken in
        that order.
    moments : Moments
        Anything with ``mu`` (Series) and ``cov`` (DataFrame) in annual units.
    method : str
    diagnostics : SolverDiagnostics
    risk_free_rate : float, default 0.0
    frontier : EfficientFrontier, optional
    extras : mapping, optional

    Returns
    -------
    OptimizationResult

    Raises
    ------
    SpecificationError
        The weights name other assets than the moments, have the wrong length or hold NaN.
    """
    assets = moments.mu.index
    if isinstance(weights, pd.Series):
        if len(weights) != len(assets) or not weights.index.isin(assets).all():
            raise SpecificationError(
                f"weights name {list(weights.index)}, the moments {list(assets)}.",
                hint="Give one weight per asset of the moments.",
            )
        w = weights.reindex(assets).to_numpy(dtype=float)
    else:
        w = np.asarray(weights, dtype=float)
        if w.shape != (len(assets),):
            raise SpecificationError(
                f"weights have shape {w.shape}; the moments have {len(assets)} assets.",
                hint="Pass one weight per asset, in the order of moments.mu.",
            )
    if not np.isfinite(w).all():
        raise SpecificationError(f"weights hold NaN or infinite values: {w.tolist()}.", hint="Check the solver output.")
    cov = moments.cov.loc[assets, assets].to_numpy(dtype=float)
    return result_from_arrays(
        w,
        moments.mu.to_numpy(dtype=float),
        cov,
        assets,
        method=method,
        diagnostics=diagnostics,
        risk_free_rate=risk_free_rate,
        frontier=frontier,
        extras=extras,
    )


def result_from_arrays(
    w: np.ndarray,
    mu: np.ndarray,
    cov: np.ndarray,
    assets: pd.Index | Sequence[str],
    *,
    method: str,
    diagnostics: SolverDiagnostics,
    risk_free_rate: float,
    frontier: EfficientFrontier | None = None,
    extras: Mapping[str, Any] | None = None,
) -> OptimizationResult:
    """:class:`OptimizationResult` from arrays in ``assets`` order (statistics from ``mu`` and ``cov``; no checks)."""
    expected, volatility, sharpe, shares = portfolio_stats(w, mu, cov, risk_free_rate)
    index = assets if isinstance(assets, pd.Index) else pd.Index(list(assets))
    return OptimizationResult(
        weights=pd.Series(w, index=index, name="weight"),
        expected_return=expected,
        volatility=volatility,
        sharpe=sharpe,
        risk_contributions=pd.Series(shares, index=index, name="risk_contribution"),
        method=method,
        diagnostics=diagnostics,
        risk_free_rate=float(risk_free_rate),
        frontier=frontier,
        extras=extras or {},
    )
