"""Agreement between two labellings of the same periods, recovery of known states, stability across seeds.

Regime numbers are arbitrary up to a permutation (two fits may call the same regime 0 and 1), so
agreement is measured after the best one-to-one matching of labels: the assignment that maximises
the number of periods with matching labels (Hungarian algorithm, ``linear_sum_assignment``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from sklearn.base import clone
from sklearn.metrics import confusion_matrix

from portfolio_engine.exceptions import ConfigurationError, DataError


class LabelAgreement(NamedTuple):
    """Share of periods whose labels agree after the best matching, and that matching.

    Attributes
    ----------
    agreement : float
        In [0, 1].
    mapping : dict of int to int
        Label of ``b`` -> matched label of ``a``; labels of ``b`` left unmatched (when ``b`` has more
        distinct labels than ``a``) are absent and count as disagreements.
    """

    agreement: float
    mapping: dict[int, int]


def _labels(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise DataError(f"{name} must be 1-D; got shape {array.shape}.", hint="Pass one label per period.")
    if array.dtype.kind == "f":
        if not np.isfinite(array).all() or np.any(array != np.round(array)):
            raise DataError(f"{name} must hold integer labels; got non-integer values.", hint="Drop NaN rows first.")
    elif array.dtype.kind not in "iub":
        raise DataError(f"{name} must hold integer labels; got dtype {array.dtype}.", hint="Encode labels as 0..K-1.")
    return array.astype(np.int64)


def label_agreement(a: Any, b: Any) -> LabelAgreement:
    """Fraction of periods on which ``a`` and ``b`` agree once ``b``'s labels are matched to ``a``'s.

    Parameters
    ----------
    a, b : array-like of int, shape (n_observations,)

    Returns
    -------
    LabelAgreement
        ``agreement`` and ``mapping`` (label of b -> label of a). Invariant to any relabelling of ``b``.

    Raises
    ------
    DataError
        If the sequences differ in length, are empty, or hold non-integer labels.
    """
    a_arr, b_arr = _labels(a, "a"), _labels(b, "b")
    if a_arr.shape != b_arr.shape or a_arr.size == 0:
        raise DataError(
            f"Label sequences must be non-empty and of equal length; got {a_arr.size} and {b_arr.size}.",
            hint="Compare labels of the same periods.",
        )
    a_values, a_codes = np.unique(a_arr, return_inverse=True)
    b_values, b_codes = np.unique(b_arr, return_inverse=True)
    counts = np.zeros((len(b_values), len(a_values)), dtype=np.int64)
    np.add.at(counts, (b_codes, a_codes), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    mapping = {int(b_values[r]): int(a_values[c]) for r, c in zip(rows, cols, strict=True)}
    return LabelAgreement(float(counts[rows, cols].sum() / a_arr.size), mapping)


def _relabel(b: np.ndarray, mapping: dict[int, int]) -> np.ndarray:
    """Apply a mapping; labels without a match become -1 (never equal to a real label)."""
    return np.array([mapping.get(int(v), -1) for v in b], dtype=np.int64)


def recovery_accuracy(true_states: Any, predicted: Any, *, match_labels: bool = True) -> float:
    """Share of periods whose predicted regime is the true one (after the best label matching by default).

    Parameters
    ----------
    true_states, predicted : array-like of int, shape (n_observations,)
    match_labels : bool, default True
        False compares the numbers as they are (meaningful when both order states the same way).

    Returns
    -------
    float
    """
    if match_labels:
        return label_agreement(true_states, predicted).agreement
    truth, guess = _labels(true_states, "true_states"), _labels(predicted, "predicted")
    if truth.shape != guess.shape or truth.size == 0:
        raise DataError(
            f"Label sequences must be non-empty and of equal length; got {truth.size} and {guess.size}.",
            hint="Compare labels of the same periods.",
        )
    return float(np.mean(truth == guess))


def regime_confusion_matrix(
    true_states: Any, predicted: Any, *, match_labels: bool = True, normalize: str | None = None
) -> pd.DataFrame:
    """Confusion matrix of true (rows) against predicted (columns) regimes.

    Parameters
    ----------
    true_states, predicted : array-like of int, shape (n_observations,)
    match_labels : bool, default True
        Relabel the predictions with :func:`label_agreement`'s mapping first; unmatched predicted labels
        appear as -1.
    normalize : {"true", "pred", "all"} or None
        As in ``sklearn.metrics.confusion_matrix``.

    Returns
    -------
    DataFrame of shape (n_labels, n_labels)
        Index and columns: the union of the (matched) labels, sorted.
    """
    truth, guess = _labels(true_states, "true_states"), _labels(predicted, "predicted")
    if match_labels:
        guess = _relabel(guess, label_agreement(truth, guess).mapping)
    labels = np.union1d(truth, guess)
    matrix = confusion_matrix(truth, guess, labels=labels, normalize=normalize)
    return pd.DataFrame(
        matrix,
        index=pd.Index(labels, name="true"),
        columns=pd.Index(labels, name="predicted"),
    )


@dataclass(frozen=True, eq=False)
class SeedStability:
    """Labels of one model refitted under several seeds, and their pairwise agreement.

    Attributes
    ----------
    seeds : tuple of int
    labels : ndarray of int, shape (n_seeds, n_observations)
        ``predict(X)`` of the fit with each seed.
    raw_agreement : ndarray of shape (n_seeds, n_seeds)
        Share of equal labels, numbers taken as they are (does the model number its states consistently?).
    matched_agreement : ndarray of shape (n_seeds, n_seeds)
        Share of equal labels after the best matching (does it find the same partition?).
    """

    seeds: tuple[int, ...]
    labels: np.ndarray
    raw_agreement: np.ndarray
    matched_agreement: np.ndarray

    def _pairs(self, matrix: np.ndarray) -> np.ndarray:
        upper = np.triu_indices(len(self.seeds), k=1)
        return matrix[upper]

    @property
    def mean_raw(self) -> float:
        """Mean raw agreement over pairs of seeds (1.0 with a single seed)."""
        pairs = self._pairs(self.raw_agreement)
        return float(pairs.mean()) if pairs.size else 1.0

    @property
    def mean_matched(self) -> float:
        """Mean matched agreement over pairs of seeds."""
        pairs = self._pairs(self.matched_agreement)
        return float(pairs.mean()) if pairs.size else 1.0

    @property
    def min_matched(self) -> float:
        """Worst matched agreement over pairs of seeds."""
        pairs = self._pairs(self.matched_agreement)
        return float(pairs.min()) if pairs.size else 1.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (the label matrix is left out)."""
        return {
            "seeds": [int(s) for s in self.seeds],
            "mean_raw_agreement": self.mean_raw,
            "mean_matched_agreement": self.mean_matched,
            "min_matched_agreement": self.min_matched,
            "raw_agreement": self.raw_agreement.tolist(),
            "matched_agreement": self.matched_agreement.tolist(),
        }


def seed_stability(
    estimator: Any, X: Any, seeds: Sequence[int], *, y: Any = None, param: str = "random_state"
) -> SeedStability:
    """Refit a clone of ``estimator`` per seed and compare the labels each predicts on ``X``.

    Parameters
    ----------
    estimator : estimator
        Anything with ``set_params(**{param: seed})``, ``fit`` and ``predict``.
    X : array-like of shape (n_observations, n_features)
    seeds : sequence of int
        At least one; two or more to compare.
    y : array-like of shape (n_observations,), optional
        Passed to ``fit`` (supervised models).
    param : str, default "random_state"
        Parameter that receives the seed (e.g. ``"hmm__random_state"`` inside a Pipeline).

    Returns
    -------
    SeedStability

    Raises
    ------
    ConfigurationError
        If no seed is given or the estimator has no parameter ``param``.
    """
    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise ConfigurationError("seed_stability needs at least one seed; got none.", hint="Pass e.g. seeds=(0, 1, 2).")
    if param not in estimator.get_params(deep=True):
        raise ConfigurationError(
            f"{type(estimator).__name__} has no parameter {param!r}.",
            hint="Name the seed parameter, e.g. param='model__random_state' for a Pipeline step.",
        )
    labels = []
    for seed in seeds:
        model = clone(estimator).set_params(**{param: seed})
        model = model.fit(X) if y is None else model.fit(X, y)
        labels.append(np.asarray(model.predict(X), dtype=np.int64))
    matrix = np.vstack(labels)
    size = len(seeds)
    raw, matched = np.eye(size), np.eye(size)
    for i, j in itertools.combinations(range(size), 2):
        raw[i, j] = raw[j, i] = float(np.mean(matrix[i] == matrix[j]))
        matched[i, j] = matched[j, i] = label_agreement(matrix[i], matrix[j]).agreement
    return SeedStability(seeds, matrix, raw, matched)
