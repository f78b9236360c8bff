"""Portfolio optimization: moments, constraints, specifications, methods and one ``optimize`` entry point.

* :class:`PortfolioSpec` (YAML/JSON or Python) names a universe, a method and its parameters, the
  estimators, :class:`Constraints` and risk limits; :func:`optimize` dispatches it to the method's function
  (a registry other modules add to with :func:`register_method`).
* Mean-variance methods (:class:`MeanVarianceOptimizer`, :func:`min_variance`, :func:`max_sharpe`,
  :func:`efficient_return`, :func:`efficient_risk`, :func:`max_utility`, :func:`efficient_frontier`) build their
  problem once and re-solve it: Clarabel called directly for linear constraints, cvxpy Parameters (DPP)
  otherwise, with a solver fallback chain.
* Results are frozen :class:`OptimizationResult` objects (weights, expected return, volatility, Sharpe,
  risk contributions, solver diagnostics); infeasible and unbounded problems raise
  :class:`~portfolio_engine.exceptions.InfeasibleError` / :class:`~portfolio_engine.exceptions.UnboundedError`
  naming the constraints involved.
"""

from portfolio_engine.optimization._cvx_constraints import (
    ConstraintSet,
    CvxInputs,
    TaggedConstraint,
    conflicting_families,
    cvxpy_constraints,
)
from portfolio_engine.optimization._dispatch import METHOD_REGISTRY, MethodFunction, optimize, register_method
from portfolio_engine.optimization._frontier import efficient_frontier

# Importing these modules registers their methods with `register_method`.
from portfolio_engine.optimization.black_litterman import (
    RelativeView,
    Views,
    black_litterman,
    black_litterman_method,
    black_litterman_posterior,
    build_views,
    he_litterman_omega,
    idzorek_omega,
)
from portfolio_engine.optimization.constraints import UCITS_DEFAULT, Constraints, LinearFamily, ResolvedConstraints
from portfolio_engine.optimization.cvar import (
    CVaRSolution,
    cvar_method,
    maximize_return_cvar,
    minimize_cvar,
    scenario_cvar,
)
from portfolio_engine.optimization.factors import (
    LinearFactorModel,
    PCAFactorModel,
    align_factor_data,
    etf_factor_model,
    fama_french_model,
    macro_factor_model,
    to_monthly_returns,
)
from portfolio_engine.optimization.hrp import HRPSolution, correlation_distance, hrp_method, hrp_weights
from portfolio_engine.optimization.mean_variance import (
    MeanVarianceOptimizer,
    efficient_return,
    efficient_risk,
    max_sharpe,
    max_utility,
    min_variance,
)
from portfolio_engine.optimization.moments import (
    COVARIANCE_ESTIMATORS,
    MEAN_ESTIMATORS,
    Moments,
    NonPSDCovarianceWarning,
    estimate_moments,
    repair_psd,
)
from portfolio_engine.optimization.rebalancing import (
    RebalanceDecision,
    RebalanceReason,
    RebalanceRule,
    drift_weights,
)
from portfolio_engine.optimization.regime_moments import RegimeMoments, blend_moments, regime_conditional_moments
from portfolio_engine.optimization.resampling import (
    ResampledFrontier,
    draw_moments,
    resampled_frontier,
    resampled_method,
    resampled_portfolio,
)
from portfolio_engine.optimization.result import (
    EfficientFrontier,
    OptimizationResult,
    SolverDiagnostics,
    portfolio_result,
    portfolio_stats,
)
from portfolio_engine.optimization.risk_parity import RiskParitySolution, risk_budgeting_weights, risk_parity_method
from portfolio_engine.optimization.spec import METHODS, EstimatorSpec, PortfolioSpec

__all__ = [
    "COVARIANCE_ESTIMATORS",
    "MEAN_ESTIMATORS",
    "METHODS",
    "METHOD_REGISTRY",
    "UCITS_DEFAULT",
    "CVaRSolution",
    "ConstraintSet",
    "Constraints",
    "CvxInputs",
    "EfficientFrontier",
    "EstimatorSpec",
    "HRPSolution",
    "LinearFactorModel",
    "LinearFamily",
    "MeanVarianceOptimizer",
    "MethodFunction",
    "Moments",
    "NonPSDCovarianceWarning",
    "OptimizationResult",
    "PCAFactorModel",
    "PortfolioSpec",
    "RebalanceDecision",
    "RebalanceReason",
    "RebalanceRule",
    "RegimeMoments",
    "RelativeView",
    "ResampledFrontier",
    "ResolvedConstraints",
    "RiskParitySolution",
    "SolverDiagnostics",
    "TaggedConstraint",
    "Views",
    "align_factor_data",
    "black_litterman",
    "black_litterman_method",
    "black_litterman_posterior",
    "blend_moments",
    "build_views",
    "conflicting_families",
    "correlation_distance",
    "cvar_method",
    "cvxpy_constraints",
    "draw_moments",
    "drift_weights",
    "efficient_frontier",
    "efficient_return",
    "efficient_risk",
    "estimate_moments",
    "etf_factor_model",
    "fama_french_model",
    "he_litterman_omega",
    "hrp_method",
    "hrp_weights",
    "idzorek_omega",
    "macro_factor_model",
    "max_sharpe",
    "max_utility",
    "maximize_return_cvar",
    "min_variance",
    "minimize_cvar",
    "optimize",
    "portfolio_result",
    "portfolio_stats",
    "regime_conditional_moments",
    "register_method",
    "repair_psd",
    "resampled_frontier",
    "resampled_method",
    "resampled_portfolio",
    "risk_budgeting_weights",
    "risk_parity_method",
    "scenario_cvar",
    "to_monthly_returns",
]
