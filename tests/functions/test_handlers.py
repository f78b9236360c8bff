"""Each Lambda handler, invoked in-process with Lambda's JSON semantics, on the sample events."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest
from aws_lambda_powertools.utilities.parser.models import SnsModel

from portfolio_engine.contracts import (
    DetectRegimeInput,
    FeaturesInput,
    IngestInput,
    OptimizeInput,
    RunRequest,
    ValidateInput,
)
from portfolio_engine.contracts.backtest import (
    AggregateBacktestInput,
    BacktestRequest,
    BacktestWindowTask,
    PlanBacktestInput,
)
from portfolio_engine.contracts.risk import (
    AggregateRiskInput,
    AlertInput,
    CheckLimitsInput,
    PlanRiskInput,
    ProposeHedgeInput,
    ShardTask,
    StressInput,
)
from portfolio_engine.contracts.runs import (
    CommitRunInput,
    ListPortfoliosInput,
    RebalanceAllRequest,
    RebalanceState,
    RecordFailureInput,
    StartRunInput,
)
from portfolio_engine.contracts.training import (
    PrepareRegimeTrainingInput,
    RegisterRegimeModelInput,
    RetrainRegimeRequest,
)
from portfolio_engine.local.runner import InProcessLambda

EVENTS = Path(__file__).resolve().parents[1] / "events"
RISK_EVENTS = {
    "plan_risk.json": PlanRiskInput,
    "simulate_risk_shard.json": ShardTask,
    "aggregate_risk.json": AggregateRiskInput,
    "stress_test.json": StressInput,
    "check_limits.json": CheckLimitsInput,
    "propose_hedge.json": ProposeHedgeInput,
    "send_alerts.json": AlertInput,
}
MODELS = {
    **RISK_EVENTS,
    "ingest_prices.json": IngestInput,
    "ingest_prices_schedule.json": IngestInput,
    "validate_prices.json": ValidateInput,
    "build_features.json": FeaturesInput,
    "detect_regime.json": DetectRegimeInput,
    "optimize_portfolio.json": OptimizeInput,
    "rebalance.json": RunRequest,
    "prepare_regime_training.json": PrepareRegimeTrainingInput,
    "register_regime_model.json": RegisterRegimeModelInput,
    "retrain_regime.json": RetrainRegimeRequest,
    "plan_backtest.json": PlanBacktestInput,
    "run_backtest_window.json": BacktestWindowTask,
    "aggregate_backtest.json": AggregateBacktestInput,
    "backtest.json": BacktestRequest,
    "notify_slack.json": SnsModel,  # an SNS event as AWS delivers it (the alert's JSON in Sns.Message)
    "start_run.json": StartRunInput,
    "commit_run.json": CommitRunInput,  # captured from a real run: its state parses as the rebalance's (below)
    "record_failure.json": RecordFailureInput,
    "list_portfolios.json": ListPortfoliosInput,
    "rebalance_all.json": RebalanceAllRequest,
}


def _event(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


def test_every_sample_event_parses_into_its_model() -> None:
    assert sorted(p.name for p in EVENTS.glob("*.json")) == sorted(MODELS)
    for name, model in MODELS.items():
        model.model_validate(_event(name))
    # CommitRun's state is the machine's whole state: the rebalance's parses into its model
    RebalanceState.model_validate(_event("commit_run.json")["state"])


def test_the_run_lifecycle_handlers_start_list_and_record_on_the_store(data_dir: Path) -> None:
    from portfolio_engine.adapters.store.sqlite import SqliteStore

    lambdas = InProcessLambda()
    started = _invoke(lambdas, "start_run", {**_event("start_run.json"), "run_id": "sample-start"})
    assert started["subject"] == "default" and started["spec_version"] == 1 and started["request"]["symbols"]
    batch = _invoke(lambdas, "list_portfolios", _event("list_portfolios.json"))
    assert batch["portfolios"] == ["default"] and batch["runs"][0]["run_id"] == "default-20221228T2200Z"
    assert batch["runs"][0]["input"] == {
        "trigger": "schedule", "source": "bundled", "scheduled_for": "2022-12-28T22:00:00+00:00", "portfolio": "default"
    }  # fmt: skip
    failure = {**_event("record_failure.json"), "run_id": "sample-start", "execution": None}
    recorded = _invoke(lambdas, "record_failure", {**failure, "state": {"run": started}})
    assert recorded["recorded"] and recorded["error"] == "InfeasibleError"
    run = SqliteStore(data_dir / "store.db").view("run", "sample-start")
    assert run is not None and run["status"] == "FAILED" and run["cause"].startswith("No portfolio meets")


def _invoke(lambdas: InProcessLambda, name: str, event: dict) -> dict:
    payload, error = lambdas.invoke(name, event)
    body = json.loads(payload)
    assert error is None, body
    return body


def test_ingest_then_validate_then_features_on_the_sample_events(data_dir: Path) -> None:
    lambdas = InProcessLambda()
    ingest = _invoke(lambdas, "ingest_prices", _event("ingest_prices.json"))
    assert ingest["run_id"] == "sample-run" and ingest["rows_new"] == 3 * 253
    assert (ingest["first_date"], ingest["last_date"]) == ("2020-01-02", "2020-12-31")
    validation = _invoke(lambdas, "validate_prices", _event("validate_prices.json"))
    assert validation["passed"] and validation["symbols"] == ["AAPL", "MSFT", "^GSPC"]
    features = _invoke(lambdas, "build_features", _event("build_features.json"))
    assert features["rows"] == 3 * 253 and "beta_63d" in features["columns"]
    # One year is too little to train a first regime model: the step says so and the run goes on.
    regime = _invoke(lambdas, "detect_regime", {**_event("detect_regime.json"), "feature_key": features["feature_key"]})
    assert not regime["available"] and "too little history" in regime["reason"] and regime["probabilities"] == {}
    # Without a regime the spec's own estimators run: minimum variance of AAPL and MSFT over 126 days.
    event = {**_event("optimize_portfolio.json"), "feature_key": features["feature_key"], "regime": regime}
    portfolio = _invoke(lambdas, "optimize_portfolio", event)
    assert portfolio["method"] == "min_variance" and not portfolio["regime_aware"]
    assert sorted(portfolio["target_weights"]) == ["AAPL", "MSFT"]
    assert abs(sum(portfolio["target_weights"].values()) - 1) < 1e-9 and portfolio["decision"]["reason"] == "initial"


def test_a_scheduled_ingest_is_idempotent_and_makes_its_own_run_id(data_dir: Path) -> None:
    lambdas = InProcessLambda()
    first = _invoke(lambdas, "ingest_prices", _event("ingest_prices_schedule.json"))
    second = _invoke(lambdas, "ingest_prices", _event("ingest_prices_schedule.json"))
    assert first["run_id"].startswith("ingest-") and first["run_id"] != second["run_id"]
    assert first["rows_new"] == 3 * 8313
    assert (second["rows_new"], second["rows_updated"], second["rows_unchanged"]) == (0, 0, second["rows_fetched"])
    assert sorted(second["up_to_date"]) == ["AAPL", "MSFT", "^GSPC"]


@pytest.mark.parametrize(
    ("function", "event", "fragment"),
    [
        ("ingest_prices", {"run_id": "x", "request": {"source": "nowhere"}}, "source"),
        ("ingest_prices", {"run_id": "x y"}, "run_id"),
        ("ingest_prices", {"run_id": "x", "request": {"start": "2020-02-01", "end": "2020-01-01"}}, "after end"),
        ("validate_prices", {"run_id": "x", "source": "bundled"}, "symbols"),
        ("build_features", {"run_id": "x", "source": "bundled", "symbols": ["A", "A"]}, "repeated"),
        ("detect_regime", {"run_id": "x", "feature_key": "prices/AAPL"}, "feature set key"),
        (
            "optimize_portfolio",
            {"run_id": "x", "source": "bundled", "symbols": ["AAPL"], "portfolio": "a b"},
            "portfolio",
        ),
        (
            "detect_regime",
            {"run_id": "x", "feature_key": _event("detect_regime.json")["feature_key"], "model": {"n_states": 99}},
            "n_states",
        ),
    ],
)
def test_a_bad_event_is_a_validation_error_naming_the_field(
    data_dir: Path, function: str, event: dict, fragment: str
) -> None:
    payload, error = InProcessLambda().invoke(function, event)
    body = json.loads(payload)
    assert error == "Unhandled" and body["errorType"] == "ValidationError"
    assert fragment in body["errorMessage"]


def test_validating_before_any_ingest_is_an_empty_data_error(data_dir: Path) -> None:
    payload, error = InProcessLambda().invoke("validate_prices", _event("validate_prices.json"))
    body = json.loads(payload)
    assert error and body["errorType"] == "EmptyDataError" and "spe data ingest" in body["errorMessage"]


def test_alpha_vantage_without_a_key_is_an_authentication_error(data_dir: Path, monkeypatch) -> None:
    monkeypatch.delenv("SPE_ALPHA_VANTAGE_API_KEY", raising=False)
    monkeypatch.delenv("SPE_ALPHA_VANTAGE_SECRET_ID", raising=False)
    payload, error = InProcessLambda().invoke(
        "ingest_prices", {"run_id": "x", "request": {"source": "alpha_vantage", "symbols": ["IBM"], "benchmarks": []}}
    )
    body = json.loads(payload)
    assert error and body["errorType"] == "AuthenticationError" and "SPE_ALPHA_VANTAGE_API_KEY" in body["errorMessage"]


def _store_sample_features(data_dir: Path) -> str:
    """The feature set the regime sample events name: AAPL, MSFT and ^GSPC from the bundled data, 2012-2022."""
    from datetime import date

    from portfolio_engine.adapters.lake import ParquetLake
    from portfolio_engine.adapters.market_data.bundled import BundledSource
    from portfolio_engine.features import DEFAULT_FEATURE_SPEC, compute_features
    from portfolio_engine.pipeline.features import feature_set_key

    symbols = ["AAPL", "MSFT", "^GSPC"]
    spec = DEFAULT_FEATURE_SPEC.model_copy(update={"index_symbol": "^GSPC"})
    features = compute_features(BundledSource().fetch(symbols, start=date(2012, 1, 1), end=date(2022, 12, 28)), spec)
    key = feature_set_key(spec, "bundled", "1d", symbols)
    manifest = {"version": spec.version, "symbols": symbols, "source": "bundled", "rows": len(features)}
    ParquetLake(str((data_dir / "lake").resolve())).write_features(features, key, manifest)
    return f"features/{key}"


def test_prepare_then_a_training_job_then_register_on_the_sample_events(data_dir: Path) -> None:
    from datetime import date

    from portfolio_engine.adapters.lake import ParquetLake
    from portfolio_engine.adapters.market_data.bundled import BundledSource
    from portfolio_engine.adapters.training_job import LocalTrainingJob
    from portfolio_engine.local.sagemaker import model_tarball

    # Given a feature set of 11 years (the sample events' run and model, this set's key)
    feature_key = _store_sample_features(data_dir)
    lake = ParquetLake(str((data_dir / "lake").resolve()))
    lambdas = InProcessLambda()
    # When PrepareRegimeTraining runs, it writes the channel and names the job
    sample = _event("prepare_regime_training.json")
    event = {**sample, "request": {**sample["request"], "feature_key": feature_key}}
    prepared = _invoke(lambdas, "prepare_regime_training", event)
    assert prepared["job_name"] == "regime-market-sample-retrain"
    assert prepared["channel_uri"] == lake.key_uri("training/regime/sample-retrain/train")
    assert prepared["output_uri"] == lake.key_uri("training/regime/sample-retrain/output")
    index = BundledSource().fetch(["^GSPC"], start=date(2012, 1, 1), end=date(2022, 12, 28))
    assert prepared["rows"] == len(index) and (prepared["first_date"], prepared["last_date"]) == (
        str(index["date"].min().date()),
        "2022-12-28",
    )
    assert json.loads(prepared["hyperparameters"]["n_restarts"]) == 2
    # and the job (the training script, run as SageMaker would) trains on that channel
    channel = {
        f: lake.get_bytes(f"training/regime/sample-retrain/train/{f}") for f in ("features.parquet", "manifest.json")
    }
    files = LocalTrainingJob(in_process=True).run(prepared["job_name"], prepared["hyperparameters"], {"train": channel})
    key = f"training/regime/sample-retrain/output/{prepared['job_name']}/output/model.tar.gz"
    lake.put_bytes(key, model_tarball(files))
    # Then RegisterRegimeModel stores it and promotes it (no champion yet)
    event = {
        **_event("register_regime_model.json"),
        "feature_key": feature_key,
        "model_artifacts_uri": lake.key_uri(key),
    }
    registered = _invoke(lambdas, "register_regime_model", event)
    assert registered["promoted"] and registered["reason"] == "no champion yet"
    assert registered["job_name"] == "regime-market-sample-retrain" and registered["n_obs"] == prepared["rows"] - 21
    assert json.loads(files["metadata.json"])["version"] == registered["version"] == registered["champion"]


def test_register_refuses_an_artefact_outside_the_lake(data_dir: Path) -> None:
    payload, error = InProcessLambda().invoke("register_regime_model", _event("register_regime_model.json"))
    body = json.loads(payload)
    assert error and body["errorType"] == "LakeError" and "is not inside the lake" in body["errorMessage"]


@pytest.mark.parametrize(
    ("run_id", "job_name"),
    [
        ("weekly_2026.11.28", "regime-market-weekly-2026-11-28"),
        # Cut to 63 characters, ending with the full name's digest: two long run ids never share a job.
        ("a" * 80, "regime-market-" + "a" * 40 + "-" + hashlib.sha256(b"regime-market-" + b"a" * 80).hexdigest()[:8]),
    ],
)
def test_prepare_names_a_valid_sagemaker_job_for_any_run_id(data_dir: Path, run_id: str, job_name: str) -> None:
    from portfolio_engine.contracts.training import TRAINING_JOB_NAME

    key = _store_sample_features(data_dir)
    event = {"run_id": run_id, "request": {"feature_key": key}}
    prepared = _invoke(InProcessLambda(), "prepare_regime_training", event)
    assert prepared["job_name"] == job_name and TRAINING_JOB_NAME.fullmatch(job_name) and len(job_name) <= 63


@pytest.mark.parametrize(
    ("function", "event", "fragment"),
    [
        ("prepare_regime_training", {"run_id": "x", "request": {"feature_key": "prices/AAPL"}}, "feature set key"),
        ("prepare_regime_training", {"run_id": "x y"}, "run_id"),
        ("register_regime_model", {**_event("register_regime_model.json"), "job_name": "regime_x"}, "job_name"),
    ],
)
def test_a_bad_retrain_event_is_a_validation_error_naming_the_field(
    data_dir: Path, function: str, event: dict, fragment: str
) -> None:
    payload, error = InProcessLambda().invoke(function, event)
    body = json.loads(payload)
    assert error == "Unhandled" and body["errorType"] == "ValidationError"
    assert fragment in body["errorMessage"]


@pytest.mark.parametrize(
    ("files", "fragment"),
    [
        ({"model.joblib": b"x"}, "has no ['metadata.json']"),
        (None, "cannot be read"),
    ],
)
def test_register_refuses_a_model_tar_gz_without_a_trained_model(
    data_dir: Path, files: dict[str, bytes] | None, fragment: str
) -> None:
    from portfolio_engine.adapters.lake import ParquetLake
    from portfolio_engine.local.sagemaker import model_tarball

    feature_key = _store_sample_features(data_dir)
    lake = ParquetLake(str((data_dir / "lake").resolve()))
    uri = lake.put_bytes(
        "training/regime/r/output/job/output/model.tar.gz",
        gzip.compress(b"not a tarball") if files is None else model_tarball(files),
    )
    event = {**_event("register_regime_model.json"), "feature_key": feature_key, "model_artifacts_uri": uri}
    payload, error = InProcessLambda().invoke("register_regime_model", event)
    body = json.loads(payload)
    assert error and body["errorType"] == "ModelNotFoundError" and fragment in body["errorMessage"]
