"""Market regimes: hidden Markov models, the ML ensemble, the hybrid, validation, and stored models.

Regime models are scikit-learn estimators. ``predict_proba`` returns *filtered* probabilities
``P(s_t | x_0..x_t)``, safe for decisions at time ``t``; smoothed probabilities and Viterbi paths
use later data and are for analysis only (``smoothed_proba``, ``viterbi``). States are numbered
calmest first.

>>> import numpy as np
>>> from portfolio_engine.regime import HMMRegimeDetector, two_state_market
>>> data = two_state_market(2000, rng=np.random.default_rng(0))
>>> detector = HMMRegimeDetector(n_states=2, random_state=0).fit(data.X / 100)  # doctest: +SKIP
>>> detector.predict_proba(data.X / 100)[-1]  # doctest: +SKIP

Names are imported on first use: the task contracts import :mod:`.definition` (pydantic only), and a
light handler must not pay for scikit-learn and hmmlearn it never calls.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from portfolio_engine._lazy import lazy_exports

_EXPORTS = {
    "BaseRegimeModel": "_base",
    "RegimeSummary": "_base",
    "check_features": "_base",
    "default_state_names": "_base",
    "HMMRegimeDetector": "_hmm",
    "expected_durations": "_markov",
    "forward_filter": "_markov",
    "stationary_distribution": "_markov",
    "SyntheticRegimes": "synthetic",
    "simulate_regimes": "synthetic",
    "three_state_market": "synthetic",
    "two_state_market": "synthetic",
    "VolatilityRegimeLabeler": "labels",
    "align_to_next_period": "labels",
    "next_period_target": "labels",
    "realized_volatility": "labels",
    "volatility_regime_labels": "labels",
    "RegimeEnsembleClassifier": "_ensemble",
    "HybridRegimeModel": "_hybrid",
    "REGIME_CODE_VERSION": "definition",
    "RegimeModelSpec": "definition",
    "training_frame": "definition",
    "TrainedRegimeModel": "training",
    "decide_promotion": "training",
    "fit_regime_model": "training",
    "holdout_score": "training",
}

__all__ = [
    "REGIME_CODE_VERSION",
    "BaseRegimeModel",
    "HMMRegimeDetector",
    "HybridRegimeModel",
    "RegimeEnsembleClassifier",
    "RegimeModelSpec",
    "RegimeSummary",
    "SyntheticRegimes",
    "TrainedRegimeModel",
    "VolatilityRegimeLabeler",
    "align_to_next_period",
    "check_features",
    "decide_promotion",
    "default_state_names",
    "expected_durations",
    "fit_regime_model",
    "forward_filter",
    "holdout_score",
    "next_period_target",
    "realized_volatility",
    "simulate_regimes",
    "stationary_distribution",
    "three_state_market",
    "training_frame",
    "two_state_market",
    "volatility_regime_labels",
]


__getattr__ = lazy_exports(__name__, _EXPORTS, globals())


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from portfolio_engine.regime._base import BaseRegimeModel, RegimeSummary, check_features, default_state_names
    from portfolio_engine.regime._ensemble import RegimeEnsembleClassifier
    from portfolio_engine.regime._hmm import HMMRegimeDetector
    from portfolio_engine.regime._hybrid import HybridRegimeModel
    from portfolio_engine.regime._markov import expected_durations, forward_filter, stationary_distribution
    from portfolio_engine.regime.definition import REGIME_CODE_VERSION, RegimeModelSpec, training_frame
    from portfolio_engine.regime.labels import (
        VolatilityRegimeLabeler,
        align_to_next_period,
        next_period_target,
        realized_volatility,
        volatility_regime_labels,
    )
    from portfolio_engine.regime.synthetic import (
        SyntheticRegimes,
        simulate_regimes,
        three_state_market,
        two_state_market,
    )
    from portfolio_engine.regime.training import TrainedRegimeModel, decide_promotion, fit_regime_model, holdout_score
