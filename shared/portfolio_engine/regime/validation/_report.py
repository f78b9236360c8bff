"""One validation report for a regime model: walk-forward metrics, seed stability, persistence, recovery."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone

from portfolio_engine.regime.validation._agreement import (
    SeedStability,
    label_agreement,
    regime_confusion_matrix,
    seed_stability,
)
from portfolio_engine.regime.validation._evaluate import horizon_of, walk_forward_evaluate
from portfolio_engine.regime.validation._persistence import PersistenceStats, persistence_stats


def _json(value: Any) -> Any:
    """A JSON-ready copy: numpy scalars to Python, arrays and tuples to lists, NaN/inf to None, estimators to repr."""
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_json(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(float(value)) else None
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, BaseEstimator):
        return repr(value)
    return str(value)


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return "" if math.isnan(v) else f"{v:.4g}"
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass(frozen=True, eq=False)
class RegimeValidationReport:
    """Everything :func:`validate_regime_model` measured.

    Attributes
    ----------
    model : str
        Class name.
    params : dict
        ``get_params(deep=False)``, JSON-ready.
    n_observations : int
    horizon : int
    folds : DataFrame
        :func:`walk_forward_evaluate`'s table.
    seed_stability : SeedStability or None
    persistence : PersistenceStats
        Of the labels predicted by the model fitted on all of X.
    recovery : dict or None
        On synthetic data: ``accuracy`` (after label matching), ``raw_accuracy``, ``mapping``,
        ``confusion_matrix`` (rows true states, columns matched predictions), ``labels``.
    """

    model: str
    params: dict[str, Any]
    n_observations: int
    horizon: int
    folds: pd.DataFrame
    seed_stability: SeedStability | None
    persistence: PersistenceStats
    recovery: dict[str, Any] | None

    @property
    def summary(self) -> dict[str, float]:
        """Mean over folds of every metric column (positions and sizes left out)."""
        skip = {"fold", "train_start", "train_end", "test_start", "test_end", "n_train", "n_test", "n_scored"}
        numeric = self.folds.select_dtypes("number")
        return {c: float(numeric[c].mean()) for c in numeric.columns if c not in skip}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``json.dumps(..., allow_nan=False)`` accepts it)."""
        return _json(
            {
                "model": self.model,
                "params": self.params,
                "n_observations": self.n_observations,
                "horizon": self.horizon,
                "folds": self.folds.to_dict(orient="records"),
                "summary": self.summary,
                "seed_stability": None if self.seed_stability is None else self.seed_stability.to_dict(),
                "persistence": self.persistence.to_dict(),
                "recovery": self.recovery,
            }
        )

    def to_markdown(self) -> str:
        """A human-readable report: tables of folds, stability, persistence and recovery."""
        parts = [
            f"# Regime validation: {self.model}",
            "",
            f"{self.n_observations} observations, horizon {self.horizon}.",
        ]
        parts += ["", "## Walk-forward folds", "", _md_table(list(self.folds.columns), self.folds.to_numpy().tolist())]
        parts += ["", "Mean over folds: " + ", ".join(f"{k} {v:.4g}" for k, v in self.summary.items()) + "."]
        if self.seed_stability is not None:
            s = self.seed_stability
            parts += [
                "",
                "## Stability across seeds",
                "",
                f"Seeds {list(s.seeds)}: mean agreement {s.mean_raw:.3f} as numbered, {s.mean_matched:.3f} after "
                f"matching labels (worst pair {s.min_matched:.3f}).",
            ]
        p = self.persistence
        table = p.per_state.reset_index()
        parts += ["", "## Persistence (full-sample fit)", "", _md_table(list(table.columns), table.to_numpy().tolist())]
        per_year = "" if p.switches_per_year is None else f", {p.switches_per_year:.2f} per year"
        parts += ["", f"{p.n_switches} switches in {p.n_observations} periods{per_year}."]
        if self.recovery is not None:
            r = self.recovery
            labels = r["labels"]
            rows = [[t, *row] for t, row in zip(labels, r["confusion_matrix"], strict=True)]
            parts += [
                "",
                "## Recovery of known regimes (synthetic data)",
                "",
                f"Accuracy {r['accuracy']:.3f} after matching labels ({r['raw_accuracy']:.3f} as numbered); "
                f"mapping predicted -> true {r['mapping']}.",
                "",
                _md_table(["true \\ predicted", *[str(v) for v in labels]], rows),
            ]
        return "\n".join(parts) + "\n"


def _fit(estimator: Any, X: Any, y: Any) -> Any:
    model = clone(estimator)
    return model.fit(X) if y is None else model.fit(X, y)


def validate_regime_model(
    estimator: Any,
    X: Any,
    *,
    y: Any = None,
    cv: Any = None,
    seeds: Sequence[int] | None = (0, 1, 2),
    seed_param: str = "random_state",
    synthetic: Any = None,
    index: Any = None,
) -> RegimeValidationReport:
    """Walk-forward metrics, stability across seeds, persistence and (optionally) recovery, in one report.

    Parameters
    ----------
    estimator : estimator
        HMM, ensemble, hybrid or a Pipeline ending in one.
    X : DataFrame or array of shape (n_observations, n_features)
    y : array-like of shape (n_observations,), optional
        Regime labels (for supervised models).
    cv : splitter, default ``WalkForwardSplit(n_splits=5)``
    seeds : sequence of int or None, default (0, 1, 2)
        Seeds for :func:`seed_stability`; None skips it.
    seed_param : str, default "random_state"
    synthetic : SyntheticRegimes, optional
        A simulated sample with known states, in the units the model expects (the presets are in
        percent: ``dataclasses.replace(s, X=s.X / 100)`` for decimals). A clone is fitted on it (on its
        true states when the model is supervised, i.e. ``y`` is given) and its predictions for
        ``t + horizon`` are compared with the true states there.
    index : DatetimeIndex, optional
        Dates for the persistence statistics; X's index by default.

    Returns
    -------
    RegimeValidationReport

    Raises
    ------
    RegimeModelError, ConfigurationError
        From the model or the splitter.
    """
    folds = walk_forward_evaluate(estimator, X, y, cv)
    stability = None if not seeds else seed_stability(estimator, X, seeds, y=y, param=seed_param)
    full = _fit(estimator, X, y)
    classes = np.asarray(getattr(full, "classes_", []))
    n_states = getattr(full, "n_states_", None)
    if n_states is None and classes.size and np.array_equal(classes, np.arange(classes.size)):
        n_states = int(classes.size)
    if index is None and isinstance(getattr(X, "index", None), pd.DatetimeIndex):
        index = X.index
    persistence = persistence_stats(np.asarray(full.predict(X)), index, n_states=n_states)
    horizon = horizon_of(estimator)
    recovery = None
    if synthetic is not None:
        frame = synthetic.frame()
        model = _fit(estimator, frame, synthetic.states if y is not None else None)
        predicted = np.asarray(model.predict(frame))
        kept = len(predicted) - horizon
        truth, guess = np.asarray(synthetic.states)[horizon:], predicted[:kept]
        agreement = label_agreement(truth, guess)
        matrix = regime_confusion_matrix(truth, guess)
        recovery = {
            "accuracy": agreement.agreement,
            "raw_accuracy": float(np.mean(truth == guess)),
            "mapping": agreement.mapping,
            "labels": [int(v) for v in matrix.index],
            "confusion_matrix": matrix.to_numpy().tolist(),
        }
    params = _json(estimator.get_params(deep=False))
    return RegimeValidationReport(
        model=type(estimator).__name__,
        params=params,
        n_observations=len(X),
        horizon=horizon,
        folds=folds,
        seed_stability=stability,
        persistence=persistence,
        recovery=recovery,
    )
