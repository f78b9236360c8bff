"""The hybrid HMM + ensemble model: exact limits of the weighted combination, stacking, sklearn contract."""

from __future__ import annotations

import io

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.metrics import log_loss
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from portfolio_engine.exceptions import ConfigurationError, SchemaError
from portfolio_engine.regime._ensemble import RegimeEnsembleClassifier
from portfolio_engine.regime._hmm import HMMRegimeDetector
from portfolio_engine.regime._hybrid import HybridRegimeModel
from portfolio_engine.regime._markov import stationary_distribution
from portfolio_engine.regime.labels import realized_volatility
from portfolio_engine.regime.synthetic import two_state_market
from portfolio_engine.regime.validation import WalkForwardSplit

SMALL = {"rf_n_estimators": 20, "gb_max_iter": 20, "xgb_n_estimators": 20, "calibration_splits": 2}


def parts() -> tuple[HMMRegimeDetector, RegimeEnsembleClassifier]:
    return HMMRegimeDetector(n_restarts=2, random_state=0), RegimeEnsembleClassifier(random_state=0, **SMALL)  # type: ignore[arg-type]


def hybrid(**kwargs: object) -> HybridRegimeModel:
    hmm, ensemble = parts()
    return HybridRegimeModel(hmm, ensemble, hmm_columns=["equity", "bond"], **kwargs)  # type: ignore[arg-type]


def market(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Synthetic two-state market plus ``lead``: a noisy reading of tomorrow's true state (the ensemble's edge)."""
    data = two_state_market(n, np.random.default_rng(seed))
    frame = data.frame() / 100  # decimals, as the HMM expects them (its default scale=100 makes percent)
    tomorrow = np.r_[data.states[1:], data.states[-1]]
    frame["lead"] = tomorrow + np.random.default_rng(seed + 100).normal(0.0, 0.5, n)
    return frame, data.states


@pytest.fixture(scope="module")
def sample() -> tuple[pd.DataFrame, np.ndarray]:
    return market(700, seed=5)


def test_weight_one_is_exactly_the_hmm_one_step_ahead_forecast(sample: tuple[pd.DataFrame, np.ndarray]) -> None:
    # Given a weighted hybrid with all the weight on the HMM
    X, _ = sample
    model = hybrid(hmm_weight=1.0).fit(X.iloc[:500])
    # Then its forecast is, bit for bit, the HMM's filtered probabilities times the transition matrix
    np.testing.assert_array_equal(model.predict_proba(X), model.hmm_.predict_next_proba(X[["equity", "bond"]]))
    # And that HMM is the one a plain fit on the HMM columns gives
    alone = HMMRegimeDetector(n_restarts=2, random_state=0).fit(X[["equity", "bond"]].iloc[:500])
    np.testing.assert_array_equal(model.predict_proba(X), alone.predict_next_proba(X[["equity", "bond"]]))
    np.testing.assert_array_equal(model.classes_, [0, 1])


def test_weight_zero_is_exactly_the_ensemble_trained_on_the_hmm_viterbi_labels(
    sample: tuple[pd.DataFrame, np.ndarray],
) -> None:
    X, _ = sample
    model = hybrid(hmm_weight=0.0).fit(X.iloc[:500])
    # Reference: fit the parts by hand (HMM, its Viterbi path of the training window, the ensemble on it)
    hmm, ensemble = parts()
    hmm.fit(X[["equity", "bond"]].iloc[:500])
    labels = hmm.viterbi(X[["equity", "bond"]].iloc[:500])
    reference = ensemble.fit(X.iloc[:500], labels).predict_proba(X)
    np.testing.assert_array_equal(model.predict_proba(X), reference)
    # And a weight in between is the convex combination (the weight is read at prediction time)
    expected = 0.25 * model.hmm_.predict_next_proba(X[["equity", "bond"]]) + 0.75 * reference
    np.testing.assert_allclose(model.set_params(hmm_weight=0.25).predict_proba(X), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("horizon", [0, 3])
def test_hmm_forecast_at_other_horizons_is_filtered_times_the_matrix_power(
    sample: tuple[pd.DataFrame, np.ndarray], horizon: int
) -> None:
    X, _ = sample
    model = hybrid(hmm_weight=1.0, horizon=horizon).fit(X.iloc[:500])
    filtered = model.hmm_.predict_proba(X[["equity", "bond"]])
    expected = filtered @ np.linalg.matrix_power(model.hmm_.transmat_, horizon)
    np.testing.assert_allclose(model.predict_proba(X), expected, rtol=0, atol=1e-14)
    assert model.ensemble_.horizon == horizon


def test_stacked_fits_on_out_of_fold_forecasts(sample: tuple[pd.DataFrame, np.ndarray]) -> None:
    # Given a stacked hybrid on 500 days
    X, _ = sample
    model = hybrid(ensemble_columns=["lead"], combine="stacked", stack_splits=2).fit(X.iloc[:500])
    # Then the stacker saw out-of-fold forecasts of the second half of the window (less the last day)
    oof = model.stack_oof_
    assert oof["hmm"].shape == oof["ensemble"].shape == (249, 2)
    np.testing.assert_array_equal(oof["target"], model.regime_labels(X.iloc[:500]).to_numpy(dtype=int)[251:500])
    # And it forecasts with two log-odds features (one per part), probabilities summing to 1
    assert model.stacker_.coef_.shape == (1, 2)
    proba = model.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    features = np.column_stack(
        [
            np.log(p[:, 1] / p[:, 0])
            for p in (model.hmm_.predict_next_proba(X[["equity", "bond"]]), model.ensemble_.predict_proba(X[["lead"]]))
        ]
    )
    np.testing.assert_allclose(proba, model.stacker_.predict_proba(features), atol=1e-6)


@pytest.mark.slow
def test_stacked_beats_or_matches_both_members_on_synthetic_data() -> None:
    # Given three synthetic markets (2,000 training days, 600 test days) where the HMM reads returns
    # and the ensemble reads a noisy signal of tomorrow's regime
    figures = {"hmm": [], "ensemble": [], "weighted": [], "stacked": []}
    for seed in (3, 4, 5):
        X, states = market(2600, seed)
        model = hybrid(ensemble_columns=["lead"], combine="stacked", stack_splits=2).fit(X.iloc[:2000])
        p_hmm = model.hmm_.predict_next_proba(X[["equity", "bond"]])
        p_ens = model.ensemble_.predict_proba(X[["lead"]])
        target = states[2001:]
        for name, proba in (
            ("hmm", p_hmm),
            ("ensemble", p_ens),
            ("weighted", 0.5 * p_hmm + 0.5 * p_ens),
            ("stacked", model.predict_proba(X)),
        ):
            figures[name].append(log_loss(target, proba[2000:-1], labels=[0, 1]))
        assert model.stack_oof_["target"].size == 999  # OOF rows: the second half of the window, less the last
    mean = {name: float(np.mean(values)) for name, values in figures.items()}
    # Then (log-loss against the true next-day state, sklearn's) the stacked model is at least as good as each
    # member; measured: hmm 0.158, ensemble 0.346, weighted 0.181, stacked 0.109
    assert mean["stacked"] <= min(mean["hmm"], mean["ensemble"]), mean
    assert mean["stacked"] < mean["weighted"], mean


def test_volatility_labels_use_the_hmm_state_shares(sample: tuple[pd.DataFrame, np.ndarray]) -> None:
    # Given the volatility label source
    X, _ = sample
    model = hybrid(label_source="volatility", vol_window=10).fit(X.iloc[:500])
    # Then the rule has one threshold, at the quantile of the HMM's calm share
    calm_share = stationary_distribution(model.hmm_.transmat_)[0]
    vol = realized_volatility(X["equity"].iloc[:500], window=10).dropna()
    assert model.labeler_.thresholds_ == pytest.approx([np.quantile(vol, calm_share)])
    labels = model.regime_labels(X.iloc[:500])
    assert labels.isna().sum() == 9
    assert labels.dropna().mean() == pytest.approx(1 - calm_share, abs=0.01)
    np.testing.assert_allclose(model.predict_proba(X).sum(axis=1), 1.0)


def test_score_is_the_mean_log_probability_of_the_next_label(sample: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, states = sample
    model = hybrid().fit(X.iloc[:500])
    proba = model.predict_proba(X.iloc[500:])
    assert model.score(X.iloc[500:], states[500:]) == pytest.approx(-log_loss(states[501:], proba[:-1], labels=[0, 1]))
    own = model.regime_labels(X.iloc[500:]).to_numpy(dtype=int)
    assert model.score(X.iloc[500:]) == pytest.approx(-log_loss(own[1:], proba[:-1], labels=[0, 1]))


def test_sklearn_contract_nested_params_pipeline_and_search(sample: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, _ = sample
    model = hybrid()
    params = model.get_params(deep=True)
    assert params["hmm__n_restarts"] == 2 and params["ensemble__rf_n_estimators"] == 20
    copy = clone(model).set_params(hmm__n_restarts=1, ensemble__xgb_max_depth=2)
    assert copy.hmm.n_restarts == 1 and model.hmm.n_restarts == 2
    # A Pipeline that keeps column names, with the HMM working on standardised features
    pipe = Pipeline(
        [
            ("scale", StandardScaler().set_output(transform="pandas")),
            ("hybrid", hybrid().set_params(hmm__scale=1.0)),
        ]
    )
    pipe.fit(X.iloc[:500])
    np.testing.assert_allclose(pipe.predict_proba(X).sum(axis=1), 1.0)
    # A search over the combination weight, scored by the hybrid's own score on walk-forward folds
    search = GridSearchCV(hybrid(), {"hmm_weight": [0.0, 1.0]}, cv=WalkForwardSplit(n_splits=2)).fit(X)
    assert search.best_params_["hmm_weight"] in (0.0, 1.0)
    assert len(search.cv_results_["mean_test_score"]) == 2


def test_errors_are_typed(sample: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, _ = sample
    with pytest.raises(SchemaError, match="hmm_columns"):
        hybrid().set_params(hmm_columns=["equity", "gold"]).fit(X)
    with pytest.raises(ConfigurationError, match="hmm_weight"):
        hybrid(hmm_weight=1.5).fit(X)
    with pytest.raises(ConfigurationError, match="label_source"):
        hybrid(label_source="oracle").fit(X)
    model = hybrid().fit(X.iloc[:400])
    with pytest.raises(SchemaError):
        model.predict_proba(X[["equity", "bond"]])


def test_a_fitted_hybrid_survives_a_joblib_round_trip(sample: tuple[pd.DataFrame, np.ndarray]) -> None:
    # The registry stores models with joblib: the copy must forecast identically
    X, _ = sample
    model = hybrid(label_source="volatility").fit(X.iloc[:400])
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    buffer.seek(0)
    np.testing.assert_array_equal(joblib.load(buffer).predict_proba(X), model.predict_proba(X))
