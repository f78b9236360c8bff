"""Training a regime model for the registry: fit, score on a holdout, describe. Pure: no I/O.

The promotion metric is the mean one-step-ahead predictive log-likelihood per observation on the
most recent ``holdout_days``: ``(log p(x_1..x_T) - log p(x_1..x_{T-H})) / H``. It uses only what the
model knew before each day (the forward recursion), so a champion and a challenger scored on the
same days compare fairly, whatever data each was trained on.

Promotion compares the metric minus a BIC-style complexity penalty per observation,
``k ln(n) / (2 n)`` for a model of ``k`` free parameters fitted on ``n`` days (:func:`bic_penalty`): a
challenger with more states must predict the holdout better by more than its extra parameters cost.

References
----------
Schwarz, G. (1978), "Estimating the dimension of a model", The Annals of Statistics 6(2), 461-464.
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
#: Name of the score promotion compares: the metric minus :func:`bic_penalty` (higher is better).
PENALIZED_METRIC = "holdout_loglik_per_obs_bic"


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


def bic_penalty(n_parameters: float, n_train: int) -> float:
    """BIC's complexity penalty per observation, ``k ln(n) / (2 n)``, in log-likelihood units.

    BIC is ``-2 log L + k ln n``; divided by ``-2 n`` it is the log-likelihood per observation minus this.

    Parameters
    ----------
    n_parameters : float
        ``k``, the model's free parameters (an HMM's ``n_parameters_``).
    n_train : int
        ``n``, the observations it was fitted on (> 1).

    Raises
    ------
    InsufficientDataError
        If ``n_train`` < 2.
    """
    if n_train < 2:
        raise InsufficientDataError(f"A BIC penalty needs at least 2 training observations; got {n_train}.")
    return float(n_parameters) * math.log(n_train) / (2.0 * n_train)


def fit_regime_model(frame: pd.DataFrame, spec: RegimeModelSpec) -> TrainedRegimeModel:
    """Fit ``spec``'s estimator on ``frame`` and measure it.

    A clone is first fitted without the last ``spec.holdout_days`` rows and scored on them (the
    challenger's promotion metric, and the same less :func:`bic_penalty` of that clone's parameters and
    training days); the model kept is then fitted on the whole frame.

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
    # The probe's own size: with n_states="bic" it may choose other states than the model kept.
    probe_parameters, n_train = float(hmm_of(probe).n_parameters_), len(frame) - spec.holdout_days
    penalty = bic_penalty(probe_parameters, n_train)
    estimator = spec.build_estimator().fit(frame)
    hmm = hmm_of(estimator)
    metrics = {
        PROMOTION_METRIC: metric,
        PENALIZED_METRIC: metric - penalty,
        "holdout_penalty": penalty,
        "holdout_n_parameters": probe_parameters,
        "holdout_n_train": float(n_train),
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
    """Whether a challenger replaces the champion, and why.

    ``*_metric`` are the holdout log-likelihoods per observation; ``*_score`` the same less ``*_penalty``
    (:func:`bic_penalty`), which the rule compares. The champion's are None without a champion.
    """

    promote: bool
    reason: str
    challenger_metric: float
    champion_metric: float | None
    challenger_score: float = math.nan
    champion_score: float | None = None
    challenger_penalty: float = 0.0
    champion_penalty: float | None = None

    def scores(self) -> dict[str, float | None]:
        """The penalties and penalized scores, JSON-ready (for the registry's record of the decision)."""
        return {
            "challenger_score": self.challenger_score,
            "champion_score": self.champion_score,
            "challenger_penalty": self.challenger_penalty,
            "champion_penalty": self.champion_penalty,
        }


def decide_promotion(
    challenger_metric: float,
    champion_metric: float | None,
    *,
    challenger_parameters: float,
    n_train: int,
    champion_parameters: float | None = None,
    champion_compatible: bool = True,
) -> PromotionDecision:
    """Promote a challenger only if its penalized holdout score is not worse than the champion's.

    Each side's score is its holdout log-likelihood per observation less :func:`bic_penalty` of its
    parameters on the ``n_train`` days both were fitted on, so a more complex challenger must predict the
    holdout better by more than its extra parameters cost; an identical definition retrained on the same
    data scores exactly the champion's and is promoted (a refresh). A challenger with no champion, or whose
    champion reads other inputs (another spec or feature version, so the two cannot be scored on the same
    data), is promoted.

    Parameters
    ----------
    challenger_metric, champion_metric : float
        Holdout log-likelihoods per observation (``champion_metric`` None without a champion).
    challenger_parameters : float
        Free parameters of the challenger as fitted before the holdout.
    n_train : int
        Days both were fitted on before the holdout.
    champion_parameters : float, optional
        Free parameters of the champion's definition fitted on the same days; required to compare.
    champion_compatible : bool, default True

    Raises
    ------
    ValueError
        A comparable champion's metric without its parameter count.
    InsufficientDataError
        ``n_train`` < 2.
    """
    penalty = bic_penalty(challenger_parameters, n_train)
    score = challenger_metric - penalty
    if champion_metric is None:
        return PromotionDecision(True, "no champion yet", challenger_metric, None, score, None, penalty)
    if not champion_compatible:
        return PromotionDecision(
            True, "the champion reads other inputs", challenger_metric, champion_metric, score, None, penalty
        )
    if champion_parameters is None:
        raise ValueError("decide_promotion needs champion_parameters to compare with a compatible champion.")
    champion_penalty = bic_penalty(champion_parameters, n_train)
    champion_score = champion_metric - champion_penalty
    scores = (score, champion_score, penalty, champion_penalty)
    if not np.isfinite(score):
        return PromotionDecision(
            False, "the challenger's metric is not finite", challenger_metric, champion_metric, *scores
        )
    promote = bool(score >= champion_score)
    reason = (
        f"{PROMOTION_METRIC} less the BIC penalty k ln(n) / 2n (n = {n_train} days): challenger "
        f"{challenger_metric:.6f} - {penalty:.6f} (k = {challenger_parameters:g}) = {score:.6f} "
        f"{'>=' if promote else '<'} champion {champion_metric:.6f} - {champion_penalty:.6f} "
        f"(k = {champion_parameters:g}) = {champion_score:.6f}"
    )
    return PromotionDecision(promote, reason, challenger_metric, champion_metric, *scores)
