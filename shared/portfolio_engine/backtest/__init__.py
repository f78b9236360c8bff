"""Backtesting: a walk-forward engine whose windows fan out and merge exactly, performance metrics, attribution.

Pure (no I/O). Names are imported on first use. The Step Functions backtest machine, its CLI and the HTML
report are the next steps (issue 6 is open).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BacktestResult": "engine",
    "BrinsonAttribution": "attribution",
    "CapmResult": "metrics",
    "DecisionContext": "engine",
    "DriftTrigger": "windows",
    "EstimationWindow": "windows",
    "FactorAttribution": "attribution",
    "Frequency": "windows",
    "Impact": "engine",
    "PERIODS_PER_YEAR": "metrics",
    "Policy": "engine",
    "RiskFree": "metrics",
    "SpecPolicy": "engine",
    "TransactionCosts": "engine",
    "WalkForwardWindow": "windows",
    "annualized_return": "metrics",
    "annualized_volatility": "metrics",
    "brinson_fachler": "attribution",
    "cagr": "metrics",
    "calendar_schedule": "windows",
    "calmar_ratio": "metrics",
    "capm": "metrics",
    "costs_paid": "metrics",
    "downside_deviation": "metrics",
    "drawdown_stats": "metrics",
    "factor_attribution": "attribution",
    "fama_french_attribution": "attribution",
    "hit_rate": "metrics",
    "information_ratio": "metrics",
    "max_drawdown": "metrics",
    "merge_results": "engine",
    "metrics_table": "metrics",
    "performance_metrics": "metrics",
    "periodic_risk_free": "metrics",
    "realized_tail_risk": "metrics",
    "regime_change_schedule": "windows",
    "rolling_beta": "metrics",
    "rolling_sharpe": "metrics",
    "rolling_volatility": "metrics",
    "run_backtest": "engine",
    "run_window": "engine",
    "sector_weights_and_returns": "attribution",
    "sharpe_ratio": "metrics",
    "signal_schedule": "windows",
    "sortino_ratio": "metrics",
    "split_windows": "windows",
    "tracking_error": "metrics",
    "trades_from_weights": "metrics",
    "transaction_costs": "metrics",
    "turnover": "metrics",
}

__all__ = [
    "PERIODS_PER_YEAR",
    "BacktestResult",
    "BrinsonAttribution",
    "CapmResult",
    "DecisionContext",
    "DriftTrigger",
    "EstimationWindow",
    "FactorAttribution",
    "Frequency",
    "Impact",
    "Policy",
    "RiskFree",
    "SpecPolicy",
    "TransactionCosts",
    "WalkForwardWindow",
    "annualized_return",
    "annualized_volatility",
    "brinson_fachler",
    "cagr",
    "calendar_schedule",
    "calmar_ratio",
    "capm",
    "costs_paid",
    "downside_deviation",
    "drawdown_stats",
    "factor_attribution",
    "fama_french_attribution",
    "hit_rate",
    "information_ratio",
    "max_drawdown",
    "merge_results",
    "metrics_table",
    "performance_metrics",
    "periodic_risk_free",
    "realized_tail_risk",
    "regime_change_schedule",
    "rolling_beta",
    "rolling_sharpe",
    "rolling_volatility",
    "run_backtest",
    "run_window",
    "sector_weights_and_returns",
    "sharpe_ratio",
    "signal_schedule",
    "sortino_ratio",
    "split_windows",
    "tracking_error",
    "trades_from_weights",
    "transaction_costs",
    "turnover",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
