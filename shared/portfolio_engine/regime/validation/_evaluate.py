"""Walk-forward evaluation of regime models, horizon-aware scorers, and a grid search with time-ordered folds.

Two kinds of model are evaluated:

* forecasters (the ensemble, the hybrid, any classifier): ``predict_proba(X)[t]`` is a distribution
  over the regime at ``t + horizon`` (``horizon`` read from the model or its Pipeline's last step, 0
  if absent). Out of sample they get log-loss, accuracy and the multi-class Brier score against
  ``y[t + horizon]``, and the log-loss of the training base rates for reference. The truth is ``y``
  when given, else the fitted model's own ``regime_labels(X)`` (the hybrid's label definition).
* unsupervised models (the HMM, ``y`` None and no ``regime_labels``): the out-of-sample log-likelihood
  per observation, ``(score(X[:e]) - score(X[:s])) / (e - s)`` for the test block ``[s, e)`` -- the
  forward recursion's one-step predictive densities, using history before ``s`` as a trader would.

Forecasts for the test block are made from the history up to its end (``predict_proba(X[:e])``), so a
filter-based model starts the block with what it knew, not from its prior.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from portfolio_engine.exceptions import ConfigurationError
from portfolio_engine.regime.labels import align_to_next_period
from portfolio_engine.regime.validation._splits import WalkForwardSplit

#: Probabilities are floored here before taking logs (sklearn's log_loss clips the same way).
PROBA_FLOOR = 1e-15
METRICS = ("log_loss", "accuracy", "brier")


def horizon_of(estimator: Any) -> int:
    """Periods ahead a model forecasts: its ``horizon`` (or its Pipeline's last step's), 0 if it has none."""
    final = estimator.steps[-1][1] if isinstance(estimator, Pipeline) else estimator
    return int(getattr(final, "horizon", 0) or 0)


def _rows(X: Any, rows: Any) -> Any:
    return X.iloc[rows] if isinstance(X, pd.DataFrame | pd.Series) else np.asarray(X)[rows]


def forecast_metrics(proba: np.ndarray, classes: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Log-loss, accuracy and multi-class Brier score of probability forecasts.

    Parameters
    ----------
    proba : ndarray of shape (n, n_classes)
    classes : ndarray of shape (n_classes,)
        Labels of the columns.
    target : ndarray of int, shape (n,)
        Realised labels; a label outside ``classes`` gets probability 0 (floored at 1e-15).

    Returns
    -------
    dict
        ``log_loss`` (mean -log p of the realised label), ``accuracy`` (argmax equals it) and ``brier``
        (mean over rows of the sum over classes of ``(p_k - 1{y = k})^2``, in [0, 2]).
    """
    column = {int(c): k for k, c in enumerate(np.asarray(classes))}
    index = np.array([column.get(int(v), -1) for v in target])
    known = index >= 0
    picked = np.zeros(len(target))
    picked[known] = proba[np.flatnonzero(known), index[known]]
    onehot = np.zeros_like(proba)
    onehot[np.flatnonzero(known), index[known]] = 1.0
    return {
        "log_loss": float(-np.mean(np.log(np.clip(picked, PROBA_FLOOR, 1.0)))),
        "accuracy": float(np.mean(np.asarray(classes)[np.argmax(proba, axis=1)] == target)),
        "brier": float(np.mean(np.sum((proba - onehot) ** 2, axis=1))),
    }


def make_regime_scorer(metric: str = "log_loss") -> Callable[[Any, Any, Any], float]:
    """A scorer ``(estimator, X, y) -> float`` (higher is better) that pairs ``predict_proba(X)[t]`` with ``y[t + h]``.

    scikit-learn's string scorers compare a forecast for t + horizon with the label at t; this one reads
    the model's ``horizon`` and shifts the labels first.

    Parameters
    ----------
    metric : {"log_loss", "accuracy", "brier"}, default "log_loss"
        Losses are negated.

    Raises
    ------
    ConfigurationError
        For an unknown metric.
    """
    if metric not in METRICS:
        raise ConfigurationError(f"metric must be one of {METRICS}; got {metric!r}.", hint="Use 'log_loss'.")
    sign = 1.0 if metric == "accuracy" else -1.0

    def scorer(estimator: Any, X: Any, y: Any) -> float:
        proba = np.asarray(estimator.predict_proba(X))
        kept, target = align_to_next_period(proba, y, horizon_of(estimator))
        return sign * forecast_metrics(kept, np.asarray(estimator.classes_), target)[metric]

    scorer.__name__ = f"regime_{metric}"
    return scorer


def _train_targets(y: Any, train: np.ndarray, horizon: int) -> np.ndarray:
    """Labels of the training rows; NaN where the row ``horizon`` positions back is not ``horizon`` rows back.

    A model pairs the training row at position p with the label at position p + horizon; across a gap
    (purge or embargo) that label is not the one ``horizon`` periods ahead, so it is blanked.
    """
    values = pd.Series(np.asarray(y, dtype=object)).astype("Float64").to_numpy(dtype="float64", na_value=np.nan)
    labels = values[train].copy()
    if horizon > 0:
        wrong = np.r_[np.zeros(min(horizon, len(train)), dtype=bool), (train[horizon:] - train[:-horizon]) != horizon]
        labels[wrong] = np.nan
    return labels


def _fold_rows(X: Any, train: np.ndarray, test: np.ndarray, k: int) -> dict[str, Any]:
    row: dict[str, Any] = {
        "fold": k,
        "train_start": int(train[0]),
        "train_end": int(train[-1]),
        "test_start": int(test[0]),
        "test_end": int(test[-1]),
        "n_train": int(train.size),
        "n_test": int(test.size),
    }
    index = getattr(X, "index", None)
    if isinstance(index, pd.DatetimeIndex):
        row["test_first_date"] = str(index[test[0]].date())
        row["test_last_date"] = str(index[test[-1]].date())
    return row


def _shares(states: np.ndarray, classes: np.ndarray) -> dict[str, float]:
    return {f"share_{int(c)}": float(np.mean(states == c)) for c in classes}


def walk_forward_evaluate(estimator: Any, X: Any, y: Any = None, cv: Any = None) -> pd.DataFrame:
    """Fit a clone per fold on the training rows and measure it on the test block that follows.

    Parameters
    ----------
    estimator : estimator
        A forecaster (``predict_proba`` and ``classes_``) or an unsupervised model with ``score``.
    X : DataFrame or array of shape (n_observations, n_features)
        Oldest first.
    y : array-like of shape (n_observations,), optional
        Regime at each t (NA allowed). Without it, forecasters are judged against their own
        ``regime_labels`` and other models by their out-of-sample likelihood.
    cv : splitter, default ``WalkForwardSplit(n_splits=5)``
        Must yield training rows before test rows.

    Returns
    -------
    DataFrame, one row per fold
        ``fold``, train/test positions and sizes (and test dates for a DatetimeIndex), then
        forecasters: ``log_loss``, ``accuracy``, ``brier``, ``base_log_loss``, ``n_scored``;
        unsupervised: ``loglik_per_obs`` (test), ``train_loglik_per_obs``; both: ``share_k`` of predicted
        states in the test block.

    Raises
    ------
    ConfigurationError
        If the model can neither forecast against labels nor be scored.
    """
    cv = WalkForwardSplit(n_splits=5) if cv is None else cv
    horizon = horizon_of(estimator)
    rows = []
    for k, (train, test) in enumerate(cv.split(X)):
        train, test = np.asarray(train), np.asarray(test)
        if train.size == 0 or train.max() >= test.min():
            raise ConfigurationError(
                f"Fold {k} trains on rows up to {train.max() if train.size else None} and tests from {test.min()}.",
                hint="Use a walk-forward splitter (WalkForwardSplit) so every model is judged on later data.",
            )
        row = _fold_rows(X, train, test, k)
        model = clone(estimator)
        end = int(test.max()) + 1
        if y is not None:
            model.fit(_rows(X, train), _train_targets(y, train, horizon))
        else:
            model.fit(_rows(X, train))
        history = _rows(X, np.arange(end))
        supervised = y is not None or hasattr(model, "regime_labels")
        if supervised:
            if not hasattr(model, "predict_proba"):
                raise ConfigurationError(
                    f"{type(model).__name__} has no predict_proba.", hint="Evaluate a probabilistic classifier."
                )
            truth = y if y is not None else model.regime_labels(history)
            labels = pd.Series(np.asarray(truth, dtype=object)).astype("Float64")
            future = labels.shift(-horizon).to_numpy(dtype="float64", na_value=np.nan)
            proba = np.asarray(model.predict_proba(history))
            scored = test[~np.isnan(future[test])]
            classes = np.asarray(model.classes_)
            row.update(forecast_metrics(proba[scored], classes, future[scored].astype(np.int64)))
            # Base rates of the training targets (labels known by the end of the training window).
            base_labels = future[train[train + horizon <= train.max()]]
            base_labels = base_labels[~np.isnan(base_labels)].astype(np.int64)
            if base_labels.size:
                base = np.array([np.mean(base_labels == c) for c in classes])
                row["base_log_loss"] = forecast_metrics(
                    np.tile(base, (scored.size, 1)), classes, future[scored].astype(np.int64)
                )["log_loss"]
            row["n_scored"] = int(scored.size)
            row.update(_shares(classes[np.argmax(proba[test], axis=1)], classes))
        elif hasattr(model, "score"):
            start = int(test.min())
            total = float(model.score(history))
            before = float(model.score(_rows(X, np.arange(start)))) if start > 0 else 0.0
            row["loglik_per_obs"] = (total - before) / (end - start)
            row["train_loglik_per_obs"] = float(model.score(_rows(X, train))) / train.size
            states = np.asarray(model.predict(history))[test]
            classes = np.arange(int(getattr(model, "n_states_", states.max() + 1)))
            row.update(_shares(states, classes))
        else:
            raise ConfigurationError(
                f"{type(model).__name__} has neither predict_proba with labels nor score.",
                hint="Pass y (regime labels) for a classifier, or evaluate a model with score().",
            )
        rows.append(row)
    return pd.DataFrame(rows)


def tune(
    estimator: Any,
    param_grid: dict[str, Any] | list[dict[str, Any]],
    X: Any,
    y: Any = None,
    *,
    cv: Any = None,
    scoring: Any = None,
    n_jobs: int | None = None,
    refit: bool = True,
) -> GridSearchCV:
    """Grid search over walk-forward folds (``GridSearchCV`` with a time-ordered default).

    Parameters
    ----------
    estimator : estimator
        E.g. ``HMMRegimeDetector`` (grid over ``n_states``), ``RegimeEnsembleClassifier``
        (``xgb_max_depth`` ...), ``HybridRegimeModel`` (``hmm__n_states``, ``ensemble__rf_max_depth``, ...).
    param_grid : dict or list of dict
    X : DataFrame or array of shape (n_observations, n_features)
    y : array-like of shape (n_observations,), optional
        Regime labels for forecasters.
    cv : splitter, default ``WalkForwardSplit(n_splits=5)``
    scoring : str, callable or None
        Default: :func:`make_regime_scorer` ("log_loss") when ``y`` is given, else the estimator's own
        ``score`` (the HMM's test log-likelihood; the hybrid's log-probability of its own labels).
        scikit-learn's string scorers ignore ``horizon``: prefer :func:`make_regime_scorer`.
    n_jobs : int, optional
    refit : bool, default True

    Returns
    -------
    GridSearchCV
        Fitted; ``best_params_``, ``cv_results_``, ``best_estimator_``.

    Notes
    -----
    Optuna is not a dependency of the engine; the same objective can be handed to it with
    :func:`make_regime_scorer` and :class:`WalkForwardSplit`.
    """
    if scoring is None and y is not None:
        scoring = make_regime_scorer("log_loss")
    search = GridSearchCV(
        estimator,
        param_grid,
        cv=WalkForwardSplit(n_splits=5) if cv is None else cv,
        scoring=scoring,
        n_jobs=n_jobs,
        refit=refit,
        error_score="raise",
    )
    return search.fit(X) if y is None else search.fit(X, y)
