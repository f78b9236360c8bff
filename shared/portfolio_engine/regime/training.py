"""Training a regime model for the registry: fit, score on a holdout, describe. Pure: no I/O.

The promotion metric is the mean one-step-ahead predictive log-likelihood per observation on the
most recent ``holdout_days``: ``(log p(x_1..x_T) - log p(x_1..x_{T-H})) / H``. It uses only what the
model knew before each day (the forward recursion), so a champion and a challenger scored on the
same days compare fairly, whatever data each was trained on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone

from portfolio_engine.exceptions import InsufficientDataError
from portfolio_engine.regime.definition import RegimeModelSpec, frame_hash

#: Name of the promotion metric (higher is better).
PROMOTION_METRIC = "holdout_loglik_per_obs"


@dataclass(frozen=True)
class TrainedRegimeModel:
    """A fitted regime model and what the registry stores beside it."""

    estimator: Any
    spec: RegimeModelSpec
    data_hash: str
    n_obs: int
    first_date: str
    last_date: str
    metrics: dict[str, float] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


def hmm_of(estimator: Any) -> Any:
    """The fitted HMM inside a model (the model itself, or a hybrid's HMM component)."""
    return getattr(estimator, "hmm_", estimator)


def holdout_score(estimator: Any, frame: pd.DataFrame, holdout_days: int) -> float:
    """Mean one-step predictive log-likelihood per observation over the last ``holdout_days`` rows.

    Parameters
    ----------
    estimator : fitted regime model
        Anything whose HMM has ``score(X)`` = total forward log-likelihood.
    frame : DataFrame of shape (n_observations, n_features)
    holdout_days : int

    Raises
    ------
    InsufficientDataError
        If the frame is not longer than the holdout.
    """
    if len(frame) <= holdout_days:
        raise InsufficientDataError(
            f"{len(frame)} observations cannot hold a {holdout_days}-day holdout and a history before it.",
        )
    hmm = hmm_of(estimator)
    columns = list(getattr(hmm, "feature_names_in_", frame.columns))
    data = frame[columns] if set(columns) <= set(frame.columns) else frame
    total = float(hmm.score(data))
    before = float(hmm.score(data.iloc[:-holdout_days]))
    return (total - before) / holdout_days


def fit_regime_model(frame: pd.DataFrame, spec: RegimeModelSpec) -> TrainedRegimeModel:
    """Fit ``spec``'s estimator on ``frame`` and measure it.

    A clone is first fitted without the last ``spec.holdout_days`` rows and scored on them (the
    challenger's promotion metric); the model kept is then fitted on the whole frame.

    Parameters
    ----------
    frame : DataFrame of shape (n_observations, n_columns)
        The training frame (:func:`~portfolio_engine.regime.definition.training_frame`).
    spec : RegimeModelSpec

    Returns
    -------
    TrainedRegimeModel

    Raises
    ------
    InsufficientDataError, DegenerateDataError, NonFiniteFeaturesError, ConvergenceError
        From the estimator's own checks.
    """
    if len(frame) < spec.min_train_days + spec.holdout_days:
        raise InsufficientDataError(
            f"{len(frame)} observations: the model needs {spec.min_train_days} to train plus a "
            f"{spec.holdout_days}-day holdout.",
        )
    probe = clone(spec.build_estimator()).fit(frame.iloc[: -spec.holdout_days])
    metric = holdout_score(probe, frame, spec.holdout_days)
    estimator = spec.build_estimator().fit(frame)
    hmm = hmm_of(estimator)
    metrics = {
        PROMOTION_METRIC: metric,
        "log_likelihood": float(hmm.log_likelihood_),
        "bic": float(hmm.bic_),
        "aic": float(hmm.aic_),
        "n_parameters": float(hmm.n_parameters_),
        "n_states": float(hmm.n_states_),
    }
    if not all(math.isfinite(v) for v in metrics.values()):
        metrics = {k: (v if math.isfinite(v) else float("nan")) for k, v in metrics.items()}
    return TrainedRegimeModel(
        estimator=estimator,
        spec=spec,
        data_hash=frame_hash(frame),
        n_obs=len(frame),
        first_date=str(frame.index[0].date()),
        last_date=str(frame.index[-1].date()),
        metrics=metrics,
        summary=hmm.summary().to_dict(),
    )


@dataclass(frozen=True)
class PromotionDecision:
    """Whether a challenger replaces the champion, and why."""

    promote: bool
    reason: str
    challenger_metric: float
    champion_metric: float | None


def decide_promotion(
    challenger_metric: float, champion_metric: float | None, *, champion_compatible: bool = True
) -> PromotionDecision:
    """Promote a challenger only if its metric is not worse than the champion's (higher is better).

    A challenger with no champion, or whose champion reads other inputs (another spec or feature
    version, so the two cannot be scored on the same data), is promoted.
    """
    if champion_metric is None:
        return PromotionDecision(True, "no champion yet", challenger_metric, None)
    if not champion_compatible:
        return PromotionDecision(True, "the champion reads other inputs", challenger_metric, champion_metric)
    if not np.isfinite(challenger_metric):
        return PromotionDecision(False, "the challenger's metric is not finite", challenger_metric, champion_metric)
    if challenger_metric >= champion_metric:
        return PromotionDecision(
            True, f"{PROMOTION_METRIC} {challenger_metric:.6f} >= {champion_metric:.6f}", challenger_metric,
            champion_metric,
        )  # fmt: skip
    return PromotionDecision(
        False, f"{PROMOTION_METRIC} {challenger_metric:.6f} < {champion_metric:.6f}", challenger_metric, champion_metric
    )
