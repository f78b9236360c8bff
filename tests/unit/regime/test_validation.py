"""Regime validation: splitters, agreement, persistence, walk-forward evaluation, search and the report."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import BaseEstimator, clone
from sklearn.metrics import accuracy_score, brier_score_loss, confusion_matrix, log_loss
from sklearn.model_selection import TimeSeriesSplit

from portfolio_engine.exceptions import ConfigurationError, DataError, InsufficientDataError
from portfolio_engine.regime._ensemble import RegimeEnsembleClassifier
from portfolio_engine.regime._hmm import HMMRegimeDetector
from portfolio_engine.regime._hybrid import HybridRegimeModel
from portfolio_engine.regime.synthetic import SyntheticRegimes, two_state_market
from portfolio_engine.regime.validation import (
    PurgedKFold,
    WalkForwardSplit,
    label_agreement,
    make_regime_scorer,
    persistence_stats,
    recovery_accuracy,
    regime_confusion_matrix,
    seed_stability,
    tune,
    validate_regime_model,
    walk_forward_evaluate,
)
from portfolio_engine.regime.validation._evaluate import _train_targets

SMALL = {"rf_n_estimators": 20, "gb_max_iter": 20, "xgb_n_estimators": 20, "calibration_splits": 2}


def in_decimals(sample: SyntheticRegimes) -> SyntheticRegimes:
    """The presets are in percent; the models here are fed decimals."""
    return dataclasses.replace(sample, X=sample.X / 100, means=sample.means / 100, covariances=sample.covariances / 1e4)


def folds(splitter: Any, n: int) -> list[tuple[list[int], list[int]]]:
    return [(train.tolist(), test.tolist()) for train, test in splitter.split(np.zeros((n, 1)))]


def r(a: int, b: int) -> list[int]:
    return list(range(a, b))


# ---------------------------------------------------------------------------------------------- splitters
def test_walk_forward_expanding_hand_checked() -> None:
    # 10 rows, 3 splits: blocks of 10 // 4 = 2 rows ending at the last row
    assert folds(WalkForwardSplit(3), 10) == [(r(0, 4), [4, 5]), (r(0, 6), [6, 7]), (r(0, 8), [8, 9])]


def test_walk_forward_rolling_hand_checked() -> None:
    assert folds(WalkForwardSplit(3, mode="rolling", train_size=3), 10) == [
        ([1, 2, 3], [4, 5]),
        ([3, 4, 5], [6, 7]),
        ([5, 6, 7], [8, 9]),
    ]
    # Default window: the first fold's expanding window (4 rows)
    assert folds(WalkForwardSplit(3, mode="rolling"), 10) == [(r(0, 4), [4, 5]), (r(2, 6), [6, 7]), (r(4, 8), [8, 9])]


def test_walk_forward_purge_hand_checked() -> None:
    # The purge rows just before each test block are in neither set
    assert folds(WalkForwardSplit(3, purge=1), 10) == [(r(0, 3), [4, 5]), (r(0, 5), [6, 7]), (r(0, 7), [8, 9])]
    assert folds(WalkForwardSplit(2, mode="rolling", train_size=2, test_size=3, purge=2), 12) == [
        ([2, 3], [6, 7, 8]),
        ([5, 6], [9, 10, 11]),
    ]


def test_walk_forward_embargo_hand_checked() -> None:
    # 12 rows, blocks [6,7] [8,9] [10,11]; embargo 1 drops row 8 (just after block 0) from fold 2's training
    assert folds(WalkForwardSplit(3, test_size=2, embargo=1), 12) == [
        (r(0, 6), [6, 7]),
        (r(0, 8), [8, 9]),
        ([0, 1, 2, 3, 4, 5, 6, 7, 9], [10, 11]),
    ]
    layout = folds(WalkForwardSplit(4, test_size=2, embargo=2), 12)
    # Blocks [4,5] [6,7] [8,9] [10,11]: fold 3 loses 6,7 (after block 0) and 8,9 (after block 1)
    assert layout[3] == (r(0, 6), [10, 11])
    assert layout[2] == (r(0, 6), [8, 9])


def test_walk_forward_train_size_sizes_the_blocks_in_expanding_mode() -> None:
    # First training window of at least 6 rows, purge 1: blocks of (20 - 6 - 1) // 3 = 4 rows
    layout = folds(WalkForwardSplit(3, train_size=6, purge=1), 20)
    assert [test for _, test in layout] == [r(8, 12), r(12, 16), r(16, 20)]
    assert layout[0][0] == r(0, 7)


@pytest.mark.parametrize(
    ("ours", "sklearn"),
    [
        (WalkForwardSplit(4), TimeSeriesSplit(4)),
        (WalkForwardSplit(3, purge=5), TimeSeriesSplit(3, gap=5)),
        (
            WalkForwardSplit(5, mode="rolling", train_size=30, test_size=10),
            TimeSeriesSplit(5, max_train_size=30, test_size=10),
        ),
    ],
)
def test_walk_forward_matches_time_series_split_without_embargo(
    ours: WalkForwardSplit, sklearn: TimeSeriesSplit
) -> None:
    assert folds(ours, 103) == folds(sklearn, 103)
    assert ours.get_n_splits() == sklearn.get_n_splits()


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(10, 200),
    n_splits=st.integers(1, 6),
    purge=st.integers(0, 5),
    embargo=st.integers(0, 5),
    rolling=st.booleans(),
)
def test_walk_forward_invariants(n: int, n_splits: int, purge: int, embargo: int, rolling: bool) -> None:
    splitter = WalkForwardSplit(n_splits, mode="rolling" if rolling else "expanding", purge=purge, embargo=embargo)
    try:
        layout = list(splitter.split(np.zeros(n)))
    except InsufficientDataError:
        # Refused only when the blocks do not fit, or (rolling) the embargo empties a training window
        impossible = n // (n_splits + 1) < 1 or n - n_splits * (n // (n_splits + 1)) - purge < 1
        assert impossible or (rolling and embargo > 0)
        return
    tests = np.concatenate([test for _, test in layout])
    # Test blocks are consecutive, contiguous, equal-sized and end at the last row
    assert tests.tolist() == r(n - tests.size, n)
    ends = []
    for train, test in layout:
        assert train.size > 0 and np.all(np.diff(train) > 0)
        # training strictly before testing, with at least `purge` rows between them
        assert train.max() < test.min() - purge
        assert np.intersect1d(train, test).size == 0
        # no training row sits in the embargo after an earlier block
        for end in ends:
            assert not np.any((train >= end) & (train < end + embargo))
        ends.append(test.max() + 1)


def test_walk_forward_refuses_impossible_layouts() -> None:
    with pytest.raises(InsufficientDataError):
        list(WalkForwardSplit(5).split(np.zeros(5)))
    with pytest.raises(InsufficientDataError):
        list(WalkForwardSplit(2, test_size=4, purge=3).split(np.zeros(10)))
    with pytest.raises(ConfigurationError):
        WalkForwardSplit(3, mode="sliding")
    with pytest.raises(ConfigurationError):
        WalkForwardSplit(3, purge=-1)


def test_purged_kfold_hand_checked() -> None:
    assert folds(PurgedKFold(5, purge=1, embargo=1), 10) == [
        ([3, 4, 5, 6, 7, 8, 9], [0, 1]),
        ([0, 5, 6, 7, 8, 9], [2, 3]),
        ([0, 1, 2, 7, 8, 9], [4, 5]),
        ([0, 1, 2, 3, 4, 9], [6, 7]),
        ([0, 1, 2, 3, 4, 5, 6], [8, 9]),
    ]


# ---------------------------------------------------------------------------------------------- agreement
def brute_force_agreement(a: np.ndarray, b: np.ndarray) -> float:
    labels_a, labels_b = np.unique(a), np.unique(b)
    best = 0.0
    for image in itertools.permutations(labels_a, min(len(labels_a), len(labels_b))):
        for chosen in itertools.permutations(labels_b, len(image)):
            mapping = dict(zip(chosen, image, strict=True))
            best = max(best, float(np.mean([mapping.get(v, -1) == u for u, v in zip(a, b, strict=True)])))
    return best


def test_label_agreement_hand_checked() -> None:
    result = label_agreement([0, 0, 1, 1, 2], [1, 1, 0, 0, 0])
    assert result.agreement == pytest.approx(4 / 5)
    assert result.mapping == {1: 0, 0: 1}


@settings(max_examples=60, deadline=None)
@given(
    data=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 3)), min_size=1, max_size=40),
    permutation=st.permutations([0, 1, 2, 3]),
)
def test_label_agreement_is_the_best_matching_and_invariant_to_permutation(
    data: list[tuple[int, int]], permutation: list[int]
) -> None:
    a = np.array([u for u, _ in data])
    b = np.array([v for _, v in data])
    permuted = np.array(permutation)[b]
    result = label_agreement(a, b)
    assert result.agreement == pytest.approx(brute_force_agreement(a, b))
    assert label_agreement(a, permuted).agreement == pytest.approx(result.agreement)
    assert label_agreement(b, permuted).agreement == 1.0


def test_recovery_and_confusion_after_matching() -> None:
    truth = np.array([0, 0, 0, 1, 1, 1, 1, 0])
    guess = 1 - truth
    guess[2] = 0  # one error once the labels are swapped back
    assert recovery_accuracy(truth, guess) == pytest.approx(7 / 8)
    assert recovery_accuracy(truth, guess, match_labels=False) == pytest.approx(1 / 8)
    matrix = regime_confusion_matrix(truth, guess)
    np.testing.assert_array_equal(matrix.to_numpy(), confusion_matrix(truth, 1 - guess))
    with pytest.raises(DataError):
        label_agreement([0, 1], [0])


class PermutingModel(BaseEstimator):
    """Predicts the sign of the first feature, numbering the two states differently for odd seeds."""

    def __init__(self, random_state: int = 0) -> None:
        self.random_state = random_state

    def fit(self, X: Any, y: Any = None) -> PermutingModel:
        self.fitted_ = True
        return self

    def predict(self, X: Any) -> np.ndarray:
        labels = (np.asarray(X)[:, 0] > 0).astype(int)
        return labels if self.random_state % 2 == 0 else 1 - labels


def test_seed_stability_separates_numbering_from_partition() -> None:
    X = np.random.default_rng(0).normal(size=(50, 1))
    result = seed_stability(PermutingModel(), X, seeds=(0, 1, 2))
    np.testing.assert_array_equal(result.raw_agreement, [[1, 0, 1], [0, 1, 0], [1, 0, 1]])
    np.testing.assert_array_equal(result.matched_agreement, np.ones((3, 3)))
    assert result.mean_raw == pytest.approx(1 / 3) and result.min_matched == 1.0
    with pytest.raises(ConfigurationError):
        seed_stability(PermutingModel(), X, seeds=(0, 1), param="seed")


def test_hmm_is_stable_across_seeds_on_synthetic_data() -> None:
    X = two_state_market(800, np.random.default_rng(2)).X / 100
    result = seed_stability(HMMRegimeDetector(n_restarts=2), X, seeds=(0, 1, 2))
    # States are ordered calm-first, so even the raw numbering agrees
    assert result.min_matched > 0.98 and result.mean_raw > 0.98


# ---------------------------------------------------------------------------------------------- persistence
def test_persistence_stats_hand_built_sequence() -> None:
    # Given spells 0x3, 1x2, 0x4, 2x3 every 30 days, and a fourth state that never occurs
    states = [0, 0, 0, 1, 1, 0, 0, 0, 0, 2, 2, 2]
    index = pd.date_range("2020-01-01", periods=12, freq="30D")
    stats = persistence_stats(states, index, n_states=4)
    table = stats.per_state
    assert table["share"].tolist() == pytest.approx([7 / 12, 2 / 12, 3 / 12, 0.0])
    assert table["n_spells"].tolist() == [2, 1, 1, 0]
    assert table["mean_duration"].iloc[:3].tolist() == [3.5, 2.0, 3.0]
    assert table["median_duration"].iloc[:3].tolist() == [3.5, 2.0, 3.0]
    assert table["max_duration"].iloc[:3].tolist() == [4.0, 2.0, 3.0]
    assert math.isnan(table["mean_duration"].iloc[3])
    np.testing.assert_allclose(
        stats.transition_matrix.to_numpy()[:3], [[5 / 7, 1 / 7, 1 / 7, 0], [0.5, 0.5, 0, 0], [0, 0, 1, 0]]
    )
    assert np.isnan(stats.transition_matrix.to_numpy()[3]).all()
    assert stats.n_switches == 3
    assert stats.switches_per_year == pytest.approx(3 / (330 / 365.25))
    json.dumps(stats.to_dict(), allow_nan=False)
    with pytest.raises(DataError):
        persistence_stats(pd.Series([0, pd.NA, 1], dtype="Int64"))


# ---------------------------------------------------------------------------------------------- evaluation
@pytest.fixture(scope="module")
def market() -> tuple[pd.DataFrame, np.ndarray]:
    data = two_state_market(900, np.random.default_rng(4))
    frame = data.frame() / 100  # decimals, as the HMM expects them
    frame["vol10"] = frame["equity"].rolling(10).std().bfill()
    return frame, data.states


def test_walk_forward_evaluate_hmm_out_of_sample_likelihood(market: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, _ = market
    X = X[["equity", "bond"]]
    hmm = HMMRegimeDetector(n_restarts=2, random_state=0)
    table = walk_forward_evaluate(hmm, X, cv=WalkForwardSplit(3, purge=5))
    assert table["fold"].tolist() == [0, 1, 2]
    # Reference for the last fold: fit on rows [0, 670), score the block [675, 900) given its history
    ref = clone(hmm).fit(X.iloc[:670])
    expected = (ref.score(X) - ref.score(X.iloc[:675])) / 225
    assert table.loc[2, "loglik_per_obs"] == pytest.approx(expected)
    assert table.loc[2, "train_loglik_per_obs"] == pytest.approx(ref.score(X.iloc[:670]) / 670)
    shares = np.bincount(ref.predict(X)[675:], minlength=2) / 225
    assert [table.loc[2, "share_0"], table.loc[2, "share_1"]] == pytest.approx(shares.tolist())
    assert table.loc[2, "test_first_date"] == str(X.index[675].date())


def test_walk_forward_evaluate_classifier_metrics_match_sklearn(market: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, states = market
    model = RegimeEnsembleClassifier(random_state=0, **SMALL)  # type: ignore[arg-type]
    table = walk_forward_evaluate(model, X, states, cv=WalkForwardSplit(2))
    # Reference for fold 1: train on [0, 600), forecast tomorrow for days 600..898 (899's tomorrow is unknown)
    ref = clone(model).fit(X.iloc[:600], states[:600])
    proba = ref.predict_proba(X.iloc[600:899])
    target = states[601:]
    row = table.iloc[1]
    assert row["n_scored"] == 299
    assert row["log_loss"] == pytest.approx(log_loss(target, proba, labels=[0, 1]))
    assert row["accuracy"] == pytest.approx(accuracy_score(target, proba.argmax(axis=1)))
    assert row["brier"] == pytest.approx(brier_score_loss(target, proba, labels=[0, 1], scale_by_half=False))
    base = np.bincount(states[1:600], minlength=2) / 599
    assert row["base_log_loss"] == pytest.approx(log_loss(target, np.tile(base, (299, 1))))
    assert (table["log_loss"] < table["base_log_loss"]).all()


def test_training_targets_are_blanked_across_gaps() -> None:
    labels = _train_targets([0, 1, 0, 1, 0, 1, 0], np.array([0, 1, 2, 5, 6]), horizon=1)
    # position 3 (row 5) would be paired with row 2 across the gap: blanked; position 0 has no predecessor
    np.testing.assert_array_equal(np.isnan(labels), [False, False, False, True, False])
    np.testing.assert_array_equal(labels[[1, 2, 4]], [1, 0, 0])


def test_regime_scorer_is_horizon_aware(market: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, states = market
    model = RegimeEnsembleClassifier(random_state=0, horizon=2, **SMALL).fit(X.iloc[:600], states[:600])  # type: ignore[arg-type]
    proba = model.predict_proba(X.iloc[600:])
    scorer = make_regime_scorer("log_loss")
    assert scorer(model, X.iloc[600:], states[600:]) == pytest.approx(-log_loss(states[602:], proba[:-2]))
    assert make_regime_scorer("accuracy")(model, X.iloc[600:], states[600:]) == pytest.approx(
        model.score(X.iloc[600:], states[600:])
    )
    with pytest.raises(ConfigurationError):
        make_regime_scorer("auc")


def test_tune_picks_the_true_number_of_states(market: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, _ = market
    search = tune(HMMRegimeDetector(n_restarts=2, random_state=0), {"n_states": [1, 2, 3]}, X[["equity", "bond"]])
    assert isinstance(search.cv, WalkForwardSplit) and search.cv.n_splits == 5
    assert search.best_params_ == {"n_states": 2}
    scores = search.cv_results_["mean_test_score"]
    assert scores[1] > scores[0]


# ---------------------------------------------------------------------------------------------- report
def test_validation_report_for_the_hmm_with_recovery(market: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, _ = market
    synthetic = in_decimals(two_state_market(600, np.random.default_rng(9)))
    report = validate_regime_model(
        HMMRegimeDetector(n_restarts=2, random_state=0),
        X[["equity", "bond"]],
        cv=WalkForwardSplit(3),
        seeds=(0, 1),
        synthetic=synthetic,
    )
    payload = report.to_dict()
    text = json.dumps(payload, allow_nan=False)
    assert json.loads(text)["model"] == "HMMRegimeDetector"
    assert len(payload["folds"]) == 3 and payload["horizon"] == 0
    assert payload["recovery"]["accuracy"] > 0.9
    assert sum(map(sum, payload["recovery"]["confusion_matrix"])) == 600
    assert payload["seed_stability"]["mean_matched_agreement"] > 0.95
    assert set(payload["persistence"]["per_state"]) == {"0", "1"}
    assert payload["persistence"]["switches_per_year"] > 0
    markdown = report.to_markdown()
    for heading in ("## Walk-forward folds", "## Stability across seeds", "## Persistence", "## Recovery"):
        assert heading in markdown
    assert report.summary["loglik_per_obs"] == pytest.approx(report.folds["loglik_per_obs"].mean())


def test_validation_report_for_a_supervised_forecaster(market: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, states = market
    synthetic = in_decimals(two_state_market(400, np.random.default_rng(10)))
    model = RegimeEnsembleClassifier(random_state=0, members=("xgb",), **SMALL)  # type: ignore[arg-type]
    report = validate_regime_model(
        model, X[["equity", "bond"]], y=states, cv=WalkForwardSplit(2), seeds=None, synthetic=synthetic
    )
    payload = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert payload["horizon"] == 1 and payload["seed_stability"] is None
    assert {"log_loss", "accuracy", "brier", "base_log_loss"} <= set(payload["summary"])
    assert sum(map(sum, payload["recovery"]["confusion_matrix"])) == 399  # forecasts for t+1
    assert "## Recovery" in report.to_markdown()


def test_walk_forward_evaluate_judges_a_hybrid_against_its_own_labels(
    market: tuple[pd.DataFrame, np.ndarray],
) -> None:
    # Given a hybrid (no y: the truth is the fold model's own label definition, here the HMM's Viterbi path)
    X, _ = market
    ensemble = RegimeEnsembleClassifier(random_state=0, members=("xgb",), **SMALL)  # type: ignore[arg-type]
    model = HybridRegimeModel(HMMRegimeDetector(n_restarts=2, random_state=0), ensemble, hmm_columns=["equity", "bond"])
    table = walk_forward_evaluate(model, X, cv=WalkForwardSplit(2))
    # Reference for fold 1: fit on [0, 600), label [0, 900) with the fold's HMM, score days 600..898
    ref = clone(model).fit(X.iloc[:600])
    labels = ref.regime_labels(X).to_numpy(dtype=int)
    proba = ref.predict_proba(X)[600:899]
    assert table.loc[1, "log_loss"] == pytest.approx(log_loss(labels[601:], proba, labels=[0, 1]))
    assert table.loc[1, "base_log_loss"] == pytest.approx(
        log_loss(labels[601:], np.tile(np.bincount(labels[1:600], minlength=2) / 599, (299, 1)))
    )
    assert (table["log_loss"] < table["base_log_loss"]).all()
