"""Validating regime models: time-ordered splits, walk-forward metrics, stability, recovery, persistence.

>>> from portfolio_engine.regime.validation import WalkForwardSplit, validate_regime_model
>>> report = validate_regime_model(model, X, cv=WalkForwardSplit(5, purge=21), seeds=(0, 1, 2))  # doctest: +SKIP
>>> report.to_markdown()  # doctest: +SKIP
"""

from portfolio_engine.regime.validation._agreement import (
    LabelAgreement,
    SeedStability,
    label_agreement,
    recovery_accuracy,
    regime_confusion_matrix,
    seed_stability,
)
from portfolio_engine.regime.validation._evaluate import (
    forecast_metrics,
    horizon_of,
    make_regime_scorer,
    tune,
    walk_forward_evaluate,
)
from portfolio_engine.regime.validation._persistence import PersistenceStats, persistence_stats
from portfolio_engine.regime.validation._report import RegimeValidationReport, validate_regime_model
from portfolio_engine.regime.validation._splits import PurgedKFold, WalkForwardSplit

__all__ = [
    "LabelAgreement",
    "PersistenceStats",
    "PurgedKFold",
    "RegimeValidationReport",
    "SeedStability",
    "WalkForwardSplit",
    "forecast_metrics",
    "horizon_of",
    "label_agreement",
    "make_regime_scorer",
    "persistence_stats",
    "recovery_accuracy",
    "regime_confusion_matrix",
    "seed_stability",
    "tune",
    "validate_regime_model",
    "walk_forward_evaluate",
]
