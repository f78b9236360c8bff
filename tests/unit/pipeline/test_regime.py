"""TrainRegime and DetectRegime on a real feature set of the bundled S&P 500, through the registry."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from portfolio_engine.adapters.lake import ParquetLake
from portfolio_engine.adapters.market_data.bundled import BundledSource
from portfolio_engine.adapters.model_registry import StoreModelRegistry
from portfolio_engine.adapters.store.sqlite import SqliteStore
from portfolio_engine.adapters.training_job import LocalTrainingJob
from portfolio_engine.contracts import DetectRegimeInput, TrainRegimeInput, TrainRegimeOutput
from portfolio_engine.exceptions import ModelNotFoundError
from portfolio_engine.features import DEFAULT_FEATURE_SPEC, compute_features
from portfolio_engine.pipeline.champion import commit_training
from portfolio_engine.pipeline.features import feature_set_key
from portfolio_engine.pipeline.regime import detect_regime, regime_probabilities, train_regime
from portfolio_engine.regime.artifacts import MODEL_FILE, load_estimator
from portfolio_engine.regime.definition import RegimeModelSpec, training_frame

# Small but real: 2 restarts, a half-year holdout, the index from 2005.
SPEC = RegimeModelSpec(n_restarts=2, holdout_days=504, min_train_days=252)
# The training script runs in this process with SageMaker's variables (tests/unit/entrypoints runs it as a child).
JOBS = LocalTrainingJob(in_process=True)


def _store_features(lake: ParquetLake, start: date, end: date) -> str:
    bars = BundledSource().fetch(["^GSPC", "KO"], start=start, end=end)
    spec = DEFAULT_FEATURE_SPEC.model_copy(update={"index_symbol": "^GSPC"})
    features = compute_features(bars, spec)
    key = feature_set_key(spec, "bundled", "1d", ["KO", "^GSPC"])
    manifest = {"version": spec.version, "symbols": ["KO", "^GSPC"], "source": "bundled", "rows": len(features)}
    lake.write_features(features, key, manifest)
    return f"features/{key}"


@pytest.fixture
def lake(tmp_path: Path) -> ParquetLake:
    return ParquetLake(str(tmp_path / "lake"))


def _registry(lake: ParquetLake) -> StoreModelRegistry:
    """Artefacts in the lake, the champion in a SQLite store beside it."""
    return StoreModelRegistry(lake, SqliteStore(Path(lake.uri).parent / "store.db"))


def _fit(task: TrainRegimeInput, lake: ParquetLake, registry: StoreModelRegistry) -> TrainRegimeOutput:
    """What `spe regime fit` does: train a challenger, then commit the decision (one append)."""
    return commit_training(registry.store, registry, train_regime(task, lake=lake, registry=registry, jobs=JOBS))


def _commit_detected(registry: StoreModelRegistry, detected: object) -> None:
    """What a run's commit does with the model DetectRegime trained: register and promote it."""
    proposal = getattr(detected, "proposal", None)
    if proposal is not None:
        commit_training(registry.store, registry, proposal, machine="rebalance")


@pytest.fixture
def feature_key(lake: ParquetLake) -> str:
    return _store_features(lake, date(2005, 1, 1), date(2022, 12, 28))


def test_the_first_challenger_is_promoted_and_its_artefacts_are_complete(lake: ParquetLake, feature_key: str) -> None:
    registry = _registry(lake)
    out = _fit(TrainRegimeInput(run_id="t1", feature_key=feature_key, model=SPEC), lake, registry)
    assert out.promoted and out.reason == "no champion yet" and registry.champion("market") == out.version
    meta = registry.metadata("market", out.version)
    assert meta["spec_version"] == SPEC.version and meta["feature_key"] == feature_key
    assert meta["feature_version"] == DEFAULT_FEATURE_SPEC.model_copy(update={"index_symbol": "^GSPC"}).version
    assert len(meta["training_data_hash"]) == 64 and meta["code"]["libraries"]["hmmlearn"]
    assert meta["metrics"]["holdout_loglik_per_obs"] == pytest.approx(out.challenger_metric)
    model = load_estimator(registry.read_file("market", out.version, MODEL_FILE))
    assert list(model.state_names_) == ["calm", "turbulent"]
    # The stored model is the one trained on every day (not the holdout probe).
    assert meta["last_date"] == "2022-12-28" and out.n_obs == meta["n_obs"]


def test_a_retrain_on_the_same_data_is_not_worse_and_a_worse_definition_is_not_promoted(
    lake: ParquetLake, feature_key: str
) -> None:
    registry = _registry(lake)
    first = _fit(TrainRegimeInput(run_id="t1", feature_key=feature_key, model=SPEC), lake, registry)
    again = _fit(TrainRegimeInput(run_id="t2", feature_key=feature_key, model=SPEC), lake, registry)
    # Same definition, same data, same seeds: the same score, the same penalty, and "not worse" promotes it.
    assert again.champion_metric == pytest.approx(again.challenger_metric, abs=1e-9)
    assert again.promoted and registry.champion("market") == again.version
    promotion = registry.metadata("market", again.version)["promotion"]
    assert promotion["challenger_penalty"] == promotion["champion_penalty"] > 0
    assert promotion["challenger_score"] == pytest.approx(promotion["champion_score"], abs=1e-9)
    # A one-state model cannot tell calm from turbulent days: its predictive likelihood is lower.
    worse = _fit(
        TrainRegimeInput(run_id="t3", feature_key=feature_key, model=SPEC.model_copy(update={"n_states": 1})),
        lake,
        registry,
    )
    assert not worse.promoted and worse.challenger_metric < worse.champion_metric
    assert registry.champion("market") == again.version == worse.champion
    assert [h["promoted"] for h in registry.history("market")] == [True, True, False]
    assert first.version != worse.version


def test_the_promotion_decision_penalizes_each_side_for_its_parameters(lake: ParquetLake, feature_key: str) -> None:
    # GIVEN a 2-state champion on the bundled S&P 500 and a 3-state challenger trained on the same data
    registry = _registry(lake)
    _fit(TrainRegimeInput(run_id="t1", feature_key=feature_key, model=SPEC), lake, registry)
    three = _fit(
        TrainRegimeInput(run_id="t2", feature_key=feature_key, model=SPEC.model_copy(update={"n_states": 3})),
        lake,
        registry,
    )
    # THEN each side is scored by its holdout log-likelihood per day less k ln(n) / 2n, with k counted by hand for a
    # full-covariance Gaussian HMM on 2 features: (K - 1) + K (K - 1) + 2K + 3K = 13 for K = 2, 23 for K = 3
    n = three.n_obs - SPEC.holdout_days
    promotion = registry.metadata("market", three.version)["promotion"]
    assert promotion["champion_penalty"] == pytest.approx(13 * np.log(n) / (2 * n))
    assert promotion["challenger_penalty"] == pytest.approx(23 * np.log(n) / (2 * n))
    assert promotion["challenger_score"] == pytest.approx(three.challenger_metric - promotion["challenger_penalty"])
    assert promotion["champion_score"] == pytest.approx(three.champion_metric - promotion["champion_penalty"])
    assert three.promoted is (promotion["challenger_score"] >= promotion["champion_score"])
    assert f"(n = {n} days)" in three.reason and "(k = 23)" in three.reason and "(k = 13)" in three.reason
    assert three.metrics["holdout_n_parameters"] == 23 and three.metrics["holdout_n_train"] == n


def test_detect_trains_a_first_champion_then_reuses_it(lake: ParquetLake, feature_key: str) -> None:
    registry = _registry(lake)
    task = DetectRegimeInput(run_id="r1", feature_key=feature_key, index_symbol="^GSPC", model=SPEC)
    first = detect_regime(task, lake=lake, registry=registry, jobs=JOBS)
    assert first.available and first.trained_now and first.as_of == date(2022, 12, 28)
    # Not the champion until the run commits: a run that fails after DetectRegime leaves no champion behind
    assert registry.champion("market") is None and first.proposal is not None and first.proposal.promoted
    _commit_detected(registry, first)
    assert registry.champion("market") == first.model_version
    assert sum(first.probabilities.values()) == pytest.approx(1.0)
    assert sum(first.next_probabilities.values()) == pytest.approx(1.0)
    assert first.regime == max(first.probabilities, key=first.probabilities.__getitem__)
    second = detect_regime(task.model_copy(update={"run_id": "r2"}), lake=lake, registry=registry,
                           jobs=JOBS)  # fmt: skip
    assert not second.trained_now and second.model_version == first.model_version
    assert second.probabilities == first.probabilities
    # next = filtered @ transition matrix
    p = np.array(list(first.probabilities.values())) @ np.array(first.transition_matrix)
    assert np.allclose(p, list(first.next_probabilities.values()))


def test_detect_probabilities_are_filtered_the_last_day_does_not_see_later_days(
    lake: ParquetLake, feature_key: str
) -> None:
    registry = _registry(lake)
    detected = detect_regime(DetectRegimeInput(run_id="r1", feature_key=feature_key, model=SPEC), lake=lake,
                             registry=registry, jobs=JOBS)  # fmt: skip
    _commit_detected(registry, detected)
    model = load_estimator(registry.read_file("market", registry.champion("market") or "", MODEL_FILE))
    frame = training_frame(lake.read_features(feature_key.removeprefix("features/"), symbols=["^GSPC"]), SPEC)
    full = regime_probabilities(model, frame)
    cut = regime_probabilities(model, frame.loc[:"2020-03-31"])
    pd.testing.assert_frame_equal(full.loc[:"2020-03-31"], cut)


def test_detect_without_a_model_and_without_training_is_a_typed_error(lake: ParquetLake, feature_key: str) -> None:
    task = DetectRegimeInput(run_id="r1", feature_key=feature_key, model=SPEC, train_if_missing=False)
    with pytest.raises(ModelNotFoundError, match="No champion") as info:
        detect_regime(task, lake=lake, registry=_registry(lake), jobs=JOBS)
    assert "spe regime fit" in info.value.hint


def test_detect_on_a_run_without_the_index_says_why_and_does_not_fail(lake: ParquetLake) -> None:
    bars = BundledSource().fetch(["KO"], start=date(2015, 1, 1), end=date(2016, 12, 31))
    spec = DEFAULT_FEATURE_SPEC.model_copy(update={"index_symbol": None})
    features = compute_features(bars, spec)
    key = feature_set_key(spec, "bundled", "1d", ["KO"])
    lake.write_features(features, key, {"version": spec.version, "symbols": ["KO"]})
    out = detect_regime(
        DetectRegimeInput(run_id="r1", feature_key=f"features/{key}", model=SPEC), lake=lake,
        registry=_registry(lake), jobs=JOBS,
    )  # fmt: skip
    assert not out.available and "^GSPC" in (out.reason or "") and out.probabilities == {}


def test_a_new_feature_version_retrains_the_champions_definition(lake: ParquetLake, feature_key: str) -> None:
    registry, jobs = _registry(lake), JOBS
    detected = detect_regime(DetectRegimeInput(run_id="r1", feature_key=feature_key, model=SPEC), lake=lake,
                             registry=registry, jobs=jobs)  # fmt: skip
    _commit_detected(registry, detected)
    # The same key now claims another feature version: the champion cannot read it any more.
    stored = lake.feature_manifest(feature_key.removeprefix("features/")) or {}
    lake.put_json(f"{feature_key}/_manifest.json", {**stored, "version": "0123456789ab"})
    out = detect_regime(DetectRegimeInput(run_id="r2", feature_key=feature_key, model=SPEC), lake=lake,
                        registry=registry, jobs=jobs)  # fmt: skip
    assert out.trained_now and out.available
    assert registry.metadata("market", out.model_version or "")["feature_version"] == "0123456789ab"
    assert json.loads(json.dumps(out.model_dump(mode="json")))["regime"] in ("calm", "turbulent")


def test_the_default_model_marks_autumn_2008_and_march_2020_turbulent_and_2017_calm(tmp_path: Path) -> None:
    # Given the default definition trained by a first run on the whole bundled index (1990-2022)
    lake = ParquetLake(str(tmp_path / "lake"))
    key = _store_features(lake, date(1990, 1, 1), date(2022, 12, 28))
    registry = _registry(lake)
    _commit_detected(
        registry,
        detect_regime(DetectRegimeInput(run_id="r1", feature_key=key), lake=lake, registry=registry, jobs=JOBS),
    )
    model = load_estimator(registry.read_file("market", registry.champion("market") or "", MODEL_FILE))
    frame = training_frame(lake.read_features(key.removeprefix("features/"), symbols=["^GSPC"]), RegimeModelSpec())
    turbulent = regime_probabilities(model, frame)["turbulent"] > 0.5
    # Then the filtered high-volatility state covers the crises and not a calm year
    assert turbulent.loc["2008-09-15":"2008-12-31"].mean() >= 0.9
    assert turbulent.loc["2020-03-01":"2020-03-31"].mean() >= 0.9
    assert turbulent.loc["2017-01-01":"2017-12-31"].mean() <= 0.1


def test_a_hybrid_definition_trains_and_forecasts_the_next_regime(lake: ParquetLake, feature_key: str) -> None:
    spec = SPEC.model_copy(update={"model": "hybrid", "ensemble_features": ("logret_1d", "vol_21d", "rsi_14")})
    registry = _registry(lake)
    out = detect_regime(
        DetectRegimeInput(run_id="h1", feature_key=feature_key, model=spec), lake=lake, registry=registry, jobs=JOBS
    )
    assert out.available and out.trained_now and out.state_names == ["calm", "turbulent"]
    assert sum(out.next_probabilities.values()) == pytest.approx(1.0)
    model = load_estimator(registry.read_file("market", out.model_version or "", MODEL_FILE))
    frame = training_frame(lake.read_features(feature_key.removeprefix("features/"), symbols=["^GSPC"]), spec)
    assert list(out.next_probabilities.values()) == pytest.approx(model.predict_proba(frame)[-1])
