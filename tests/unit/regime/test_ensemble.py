"""The calibrated regime ensemble: alignment, calibration against known probabilities, sklearn contract."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from portfolio_engine.exceptions import ConfigurationError, InsufficientDataError, NonFiniteFeaturesError
from portfolio_engine.regime._ensemble import RegimeEnsembleClassifier
from portfolio_engine.regime.synthetic import two_state_market
from portfolio_engine.regime.validation import WalkForwardSplit, make_regime_scorer

SMALL = {"rf_n_estimators": 30, "gb_max_iter": 30, "xgb_n_estimators": 30}


def small(**kwargs: object) -> RegimeEnsembleClassifier:
    return RegimeEnsembleClassifier(random_state=0, **{**SMALL, **kwargs})  # type: ignore[arg-type]


def markov_chain(transmat: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    states = np.zeros(n, dtype=np.int64)
    for t in range(1, n):
        states[t] = rng.choice(len(transmat), p=transmat[states[t - 1]])
    return states


def market_features(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The synthetic two-state market with a 10-day rolling volatility feature (warm-up rows dropped)."""
    data = two_state_market(n + 9, np.random.default_rng(seed))
    frame = data.frame()
    frame["vol10"] = frame["equity"].rolling(10).std()
    return frame.iloc[9:], data.states[9:]


TRANSMAT = np.array([[0.9, 0.1], [0.3, 0.7]])


@pytest.fixture(scope="module")
def known_chain() -> tuple[pd.DataFrame, np.ndarray]:
    """A chain whose current state is visible in X: P(s_{t+1} | X_t) = TRANSMAT[s_t], known exactly."""
    rng = np.random.default_rng(7)
    states = markov_chain(TRANSMAT, 6000, rng)
    X = pd.DataFrame({"signal": states + rng.normal(0.0, 0.1, states.size), "noise": rng.normal(size=states.size)})
    return X, states


def test_probabilities_are_calibrated_to_the_known_next_regime_probabilities(
    known_chain: tuple[pd.DataFrame, np.ndarray],
) -> None:
    # Given a chain whose next-period probabilities are TRANSMAT[current state], 4000 rows to learn from
    X, states = known_chain
    cut = 4000
    model = small().fit(X.iloc[:cut], states[:cut])
    # When it forecasts the 2000 held-out rows
    proba = model.predict_proba(X.iloc[cut:])
    # Then rows sum to 1 and, given the current state, the forecast is the true transition row (within 0.03)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    now = states[cut:]
    errors = [np.abs(proba[now == k].mean(axis=0) - TRANSMAT[k]).max() for k in (0, 1)]
    assert max(errors) < 0.03, errors
    # And reliability: in each forecast bin the realised frequency of "turbulent next" matches the forecast
    realised, forecast = states[cut + 1 :], proba[:-1, 1]
    for low, high in ((0.0, 0.4), (0.4, 1.0)):
        pick = (forecast >= low) & (forecast < high)
        assert abs(realised[pick].mean() - forecast[pick].mean()) < 0.05
    # And the calibration is what does it: the raw members (30 shallow boosting rounds) are far off
    raw = small(calibration=None).fit(X.iloc[:cut], states[:cut]).predict_proba(X.iloc[cut:])
    assert max(np.abs(raw[now == k].mean(axis=0) - TRANSMAT[k]).max() for k in (0, 1)) > 2 * max(errors)


def test_beats_the_base_rate_on_synthetic_regime_data() -> None:
    # Given the synthetic two-state market (true states as labels), train on the first 1200 days
    X, states = market_features(1800, seed=3)
    cut = 1200
    model = small().fit(X.iloc[:cut], states[:cut])
    # When it forecasts tomorrow's regime on the last 600 days
    proba = model.predict_proba(X.iloc[cut:-1])
    target = states[cut + 1 :]
    base = np.bincount(states[1:cut], minlength=2) / (cut - 1)
    ours, reference = log_loss(target, proba, labels=[0, 1]), log_loss(target, np.tile(base, (target.size, 1)))
    # Then its log-loss (sklearn's) is well below the base rate's
    assert ours < 0.7 * reference, (ours, reference)
    assert accuracy_score(target, model.predict(X.iloc[cut:-1])) > 0.85


def test_horizon_pairs_features_with_the_label_that_many_rows_later() -> None:
    # Given a feature that reveals the label two rows ahead, and nothing else
    rng = np.random.default_rng(11)
    y = rng.integers(0, 2, 600)
    X = pd.DataFrame({"lead2": np.r_[y[2:], [0, 0]] + rng.normal(0, 0.1, 600)})
    # When fitted with horizon=2 it forecasts y[t+2] from X[t] almost perfectly
    model = small(horizon=2).fit(X.iloc[:400], y[:400])
    assert model.score(X.iloc[400:], y[400:]) > 0.95
    assert model.score(X.iloc[400:], y[400:]) == pytest.approx(np.mean(model.predict(X.iloc[400:-2]) == y[402:]))
    # And with horizon=0 (the current label) the same feature is useless
    current = small(horizon=0).fit(X.iloc[:400], y[:400])
    assert current.score(X.iloc[400:], y[400:]) < 0.65


def test_a_rare_regime_missing_from_early_folds_does_not_crash() -> None:
    # Given labels where state 2 occurs only 3 times, late in the sample, and state 1 only in the second half
    rng = np.random.default_rng(5)
    X = pd.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400)})
    y = np.zeros(400, dtype=np.int64)
    y[250:300] = 1
    y[[350, 351, 380]] = 2
    for method in ("sigmoid", "isotonic", "temperature", None):
        # When fitted (each calibration method, and none)
        model = small(calibration=method).fit(X, y)
        proba = model.predict_proba(X)
        # Then every regime has a column, probabilities are finite and sum to 1
        assert model.classes_.tolist() == [0, 1, 2]
        assert proba.shape == (400, 3) and np.isfinite(proba).all()
        np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_labels_need_not_be_contiguous() -> None:
    rng = np.random.default_rng(6)
    y = np.where(rng.random(300) < 0.3, 2, 0)
    X = pd.DataFrame({"lead": np.r_[y[1:], 0] + rng.normal(0, 0.2, 300)})
    model = small().fit(X, y)
    assert model.classes_.tolist() == [0, 2]
    assert set(model.predict(X)) <= {0, 2}


def test_one_member_with_all_the_weight_is_that_member() -> None:
    X, states = market_features(400, seed=8)
    model = small(weights=(1.0, 0.0, 0.0)).fit(X, states)
    np.testing.assert_allclose(model.predict_proba(X), model.estimators_["rf"].predict_proba(X.to_numpy()))
    alone = small(members=("xgb",)).fit(X, states)
    assert list(alone.estimators_) == ["xgb"] and alone.weights_.tolist() == [1.0]


def test_seeded_fits_are_reproducible() -> None:
    X, states = market_features(400, seed=9)
    a = small().fit(X, states).predict_proba(X)
    b = small().fit(X, states).predict_proba(X)
    c = RegimeEnsembleClassifier(random_state=1, **SMALL).fit(X, states).predict_proba(X)  # type: ignore[arg-type]
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_sklearn_contract_clone_params_and_members_hyperparameters() -> None:
    # Given an ensemble with a member hyperparameter set through set_params
    model = small().set_params(xgb_max_depth=2, rf_min_samples_leaf=7, gb_learning_rate=0.2)
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    assert not hasattr(copy, "estimators_")
    # When fitted; Then the members were built with those values
    X, states = market_features(300, seed=10)
    model.fit(X, states)
    members = {name: est.calibrated_classifiers_[0].estimator.estimator_ for name, est in model.estimators_.items()}
    assert members["xgb"].max_depth == 2
    assert members["rf"].min_samples_leaf == 7
    assert members["gb"].learning_rate == 0.2
    assert model.n_features_in_ == 3 and model.feature_names_in_.tolist() == ["equity", "bond", "vol10"]


def test_pipeline_and_grid_search_over_member_hyperparameters() -> None:
    # Given a Pipeline ending in the ensemble
    X, states = market_features(500, seed=12)
    pipe = Pipeline([("scale", StandardScaler()), ("ens", small(members=("rf", "xgb")))])
    # When searched over a member's depth with walk-forward folds and the horizon-aware scorer
    search = GridSearchCV(
        pipe,
        {"ens__xgb_max_depth": [1, 3]},
        cv=WalkForwardSplit(n_splits=2),
        scoring=make_regime_scorer("log_loss"),
    ).fit(X, states)
    # Then both candidates were scored on out-of-sample folds and the refitted pipeline forecasts
    assert len(search.cv_results_["mean_test_score"]) == 2
    assert search.best_params_["ens__xgb_max_depth"] in (1, 3)
    assert np.all(np.asarray(search.cv_results_["mean_test_score"]) < 0)
    np.testing.assert_allclose(search.predict_proba(X).sum(axis=1), 1.0)


def test_errors_are_typed() -> None:
    X, states = market_features(300, seed=13)
    with pytest.raises(NonFiniteFeaturesError):
        small().fit(X.assign(equity=np.r_[np.nan, X["equity"].to_numpy()[1:]]), states)
    with pytest.raises(InsufficientDataError, match="regime"):
        small().fit(X, np.zeros(len(X), dtype=int))
    with pytest.raises(InsufficientDataError, match="aligned rows"):
        small().fit(X.iloc[:30], states[:30])
    with pytest.raises(ConfigurationError):
        small(members=("rf", "svm")).fit(X, states)
    with pytest.raises(ConfigurationError):
        small(calibration="platt").fit(X, states)
    with pytest.raises(ConfigurationError):
        small(weights=(1.0, -1.0, 1.0)).fit(X, states)
