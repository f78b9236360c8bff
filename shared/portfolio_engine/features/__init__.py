"""Features: a versioned definition (:class:`FeatureSpec`) and its point-in-time computation.

>>> from portfolio_engine.features import DEFAULT_FEATURE_SPEC, compute_features
>>> features = compute_features(bars, DEFAULT_FEATURE_SPEC)  # doctest: +SKIP
"""

from portfolio_engine.features.compute import compute_features
from portfolio_engine.features.definition import (
    DEFAULT_FEATURE_SPEC,
    FEATURE_CODE_VERSION,
    BollingerParams,
    EwmaVolParams,
    FeatureSpec,
    MACDParams,
    MomentumParams,
)

__all__ = [
    "DEFAULT_FEATURE_SPEC",
    "FEATURE_CODE_VERSION",
    "BollingerParams",
    "EwmaVolParams",
    "FeatureSpec",
    "MACDParams",
    "MomentumParams",
    "compute_features",
]
