"""The real retrain-regime state machine JSON, executed end to end by the local runner.

PrepareTraining writes the channel to the lake, moto's interpreter calls SageMaker's CreateTrainingJob
and DescribeTrainingJob (answered by LocalSageMaker, which runs the real training script), and
RegisterModel stores the job's model.tar.gz and applies the promotion rule. Small specs (2 restarts,
a one-year holdout) keep each execution around a second or two.
"""

from __future__ import annotations

import io
import json
import tarfile
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from portfolio_engine.adapters.lake import ParquetLake
from portfolio_engine.adapters.market_data.bundled import BundledSource
from portfolio_engine.adapters.model_registry import StoreModelRegistry
from portfolio_engine.adapters.store.sqlite import SqliteStore
from portfolio_engine.exceptions import StateMachineError
from portfolio_engine.features import DEFAULT_FEATURE_SPEC, compute_features
from portfolio_engine.local.runner import ExecutionResult, LocalStateMachineRunner
from portfolio_engine.pipeline.features import feature_set_key
from portfolio_engine.regime.definition import RegimeModelSpec, training_frame

REPO_ROOT = Path(__file__).resolve().parents[2]


def _registry(lake: ParquetLake) -> StoreModelRegistry:
    """The registry the machine's functions use: artefacts in the lake, the champion in the data dir's store."""
    return StoreModelRegistry(lake, SqliteStore(Path(lake.uri).parent / "store.db"))


DEFINITION = REPO_ROOT / "state_machines" / "retrain_regime.asl.json"
SPEC = RegimeModelSpec(n_restarts=2, holdout_days=252, min_train_days=252)


def _store_features(lake: ParquetLake, start: date, end: date) -> str:
    bars = BundledSource().fetch(["^GSPC", "KO"], start=start, end=end)
    spec = DEFAULT_FEATURE_SPEC.model_copy(update={"index_symbol": "^GSPC"})
    features = compute_features(bars, spec)
    key = feature_set_key(spec, "bundled", "1d", ["KO", "^GSPC"])
    manifest = {
        "version": spec.version,
        "symbols": ["KO", "^GSPC"],
        "source": "bundled",
        "rows": len(features),
        "last_date": str(features["date"].max().date()),
    }
    lake.write_features(features, key, manifest)
    return f"features/{key}"


@pytest.fixture
def lake(data_dir: Path) -> ParquetLake:
    return ParquetLake(str((data_dir / "lake").resolve()))


@pytest.fixture
def feature_key(lake: ParquetLake) -> str:
    return _store_features(lake, date(2012, 1, 1), date(2022, 12, 28))


def _run(payload: dict[str, Any], name: str) -> tuple[ExecutionResult, list[tuple[str, str]]]:
    events: list[tuple[str, str]] = []
    runner = LocalStateMachineRunner(listener=lambda e, f, d: events.append((e, f)), wait_scale=0)
    runner.sagemaker.poll_seconds = 0.2  # a few Describe rounds per job: the Wait loop really turns
    return runner.run("retrain_regime", payload, name=name), events


def _entered(result: ExecutionResult) -> list[str]:
    return [e["name"] for e in result.history if e["type"].endswith("StateEntered")]


def test_a_first_retrain_trains_on_sagemaker_locally_and_promotes_the_model(
    lake: ParquetLake, feature_key: str
) -> None:
    # Given a feature set in the lake and no champion
    # When the machine runs with the feature set defaulted (the latest holding ^GSPC)
    result, events = _run({"model": SPEC.model_dump(mode="json")}, "retrain-1")
    # Then the channel was prepared, the job trained, and the model registered and promoted
    assert result.succeeded, result.cause
    out = result.output
    assert out["run_id"] == "retrain-1" and out["feature_key"] == feature_key
    assert out["job_name"] == "regime-market-retrain-1"
    assert [f for e, f in events if e == "start"] == [
        "start_run",
        "prepare_regime_training",
        "training_job",
        "register_regime_model",
        "commit_run",
    ]
    states = _entered(result)
    assert states[:3] == ["StartRun", "PrepareTraining", "CreateTrainingJob"]
    assert states[-2:] == ["RegisterModel", "CommitRun"]
    assert states.count("DescribeTrainingJob") == states.count("WaitForTraining") >= 1
    decision = out["decision"]
    assert decision["promoted"] and decision["reason"] == "no champion yet"
    registry = _registry(lake)
    assert registry.champion("market") == decision["version"] == decision["champion"]
    assert out["commit"]["champion_promoted"] == decision["version"]
    # and the run is recorded in the model's stream: started, registered, promoted, committed, with timings
    run = registry.store.view("run", "retrain-1")
    assert run is not None and run["status"] == "SUCCEEDED" and run["machine"] == "retrain-regime"
    assert [s["state"] for s in run["steps"]][:2] == ["StartRun", "PrepareTraining"]
    types = [e.type for e in registry.store.events("model/regime/market")]
    assert types == ["RunStarted", "ChallengerRegistered", "ChampionPromoted", "RunCommitted"]
    meta = registry.metadata("market", decision["version"])
    assert meta["feature_key"] == feature_key and meta["spec_version"] == SPEC.version
    # the channel and the artefact sit where SageMaker would have them, under the lake
    base = "training/regime/retrain-1"
    channel = lake.get_bytes(f"{base}/train/features.parquet")
    assert json.loads(lake.get_bytes(f"{base}/train/manifest.json"))["feature_key"] == feature_key
    assert out["model_artifacts_uri"] == lake.key_uri(f"{base}/output/regime-market-retrain-1/output/model.tar.gz")
    tarball = lake.get_bytes(f"{base}/output/regime-market-retrain-1/output/model.tar.gz")
    with tarfile.open(fileobj=io.BytesIO(tarball)) as tar:
        assert sorted(tar.getnames()) == ["metadata.json", "model.joblib"]
    # and the model trained on exactly the symbol's rows of the feature set
    frame = training_frame(pd.read_parquet(io.BytesIO(channel)), SPEC)
    assert len(frame) == meta["n_obs"] == decision["n_obs"]
    assert decision["last_date"] == "2022-12-28"


def test_a_second_retrain_on_the_same_data_is_not_worse_and_is_promoted(lake: ParquetLake, feature_key: str) -> None:
    payload = {"feature_key": feature_key, "model": SPEC.model_dump(mode="json")}
    first, _ = _run(payload, "retrain-a")
    second, _ = _run(payload, "retrain-b")
    assert first.succeeded and second.succeeded, (first.cause, second.cause)
    decision = second.output["decision"]
    # Same definition, same data, same seeds: the champion refitted on the same window scores the same.
    assert decision["champion_metric"] == pytest.approx(decision["challenger_metric"], abs=1e-9)
    assert decision["promoted"] and decision["reason"].startswith("holdout_loglik_per_obs")
    history = _registry(lake).history("market")
    assert [h["run_id"] for h in history] == ["retrain-a", "retrain-b"]
    assert history[1]["champion_before"] == first.output["decision"]["version"]
    assert _registry(lake).champion("market") == decision["version"] != first.output["decision"]["version"]


def test_too_little_history_fails_the_execution_with_the_jobs_error_name_and_cause(lake: ParquetLake) -> None:
    # Given a feature set of one year, shorter than the model's 252 + 252 days
    key = _store_features(lake, date(2021, 1, 1), date(2022, 12, 28))
    # When the machine trains on it
    result, events = _run({"feature_key": key, "model": SPEC.model_dump(mode="json")}, "retrain-short")
    # Then the job failed with the script's typed error, named by the execution, and nothing was registered
    assert result.status == "FAILED"
    assert result.error == "InsufficientDataError"
    assert result.cause.startswith('AlgorithmError: {"errorType": "InsufficientDataError"')
    failure = json.loads(result.cause.removeprefix("AlgorithmError: "))
    assert "observations" in failure["errorMessage"] and failure["hint"]
    assert _entered(result)[-3:] == ["TrainingFailed", "RecordFailure", "Failed"]
    assert ("error", "training_job") in events and "register_regime_model" not in {f for _, f in events}
    assert _registry(lake).champion("market") is None
    # and the failed run is recorded with the script's error (the job itself is not a Lambda state)
    run = _registry(lake).store.view("run", "retrain-short")
    assert run is not None and run["status"] == "FAILED" and run["error"] == "InsufficientDataError"
    # and the runner's error carries the script's message and hint, not SageMaker's wrapping
    expected = r"InsufficientDataError: \d+ observations: the model needs 252 to train plus a 252-day"
    with pytest.raises(StateMachineError, match=expected) as info:
        result.raise_for_status()
    assert info.value.error == "InsufficientDataError" and info.value.hint == failure["hint"]


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"surprise": 1}, "Extra inputs are not permitted"),
        ({"feature_key": "prices/AAPL"}, "feature set key"),
        ({"model": {"n_states": 99}}, "n_states"),
    ],
)
def test_a_malformed_input_fails_at_prepare_with_the_parser_error(
    data_dir: Path, payload: dict[str, Any], fragment: str
) -> None:
    result, events = _run(payload, "retrain-bad")
    assert result.status == "FAILED" and result.error == "ValidationError"
    assert fragment in result.cause
    # StartRun parses the request: the run is recorded as failed there, and nothing else ran
    assert [f for e, f in events if e == "start"] == ["start_run", "record_failure"]


def test_without_a_feature_set_holding_the_symbol_prepare_fails_with_a_hint(data_dir: Path) -> None:
    result, _ = _run({}, "retrain-empty")
    assert result.status == "FAILED" and result.error == "EmptyDataError"
    assert "spe run" in json.loads(result.cause)["errorMessage"]


def _fail_states(definition: dict[str, Any]) -> dict[str, Any]:
    # The definition's own Choice, Pass and Fail states; RecordFailure (a Lambda) replaced by a Pass.
    return {
        "StartAt": "TrainingJobStatus",
        "States": {
            k: definition["States"][k]
            for k in ("TrainingJobStatus", "TrainingFailure", "TrainingFailed", "TrainingCrashed", "TrainingStopped",
                      "Failed")
        }
        | {
            "RegisterModel": {"Type": "Succeed"},
            "WaitForTraining": {"Type": "Succeed"},
            "RecordFailure": {"Type": "Pass", "Next": "Failed"},
        },
    }  # fmt: skip


@pytest.mark.parametrize(
    ("training", "error", "cause"),
    [
        # SageMaker's documented form (the failure file verbatim) and the one seen in practice (prefixed)
        (
            {"TrainingJobStatus": "Failed", "FailureReason": '{"errorType": "ConvergenceError", "errorMessage": "x"}'},
            "ConvergenceError",
            '{"errorType": "ConvergenceError", "errorMessage": "x"}',
        ),
        (
            {"TrainingJobStatus": "Failed", "FailureReason": 'AlgorithmError: {"errorType": "SchemaError", "x": 1}'},
            "SchemaError",
            'AlgorithmError: {"errorType": "SchemaError", "x": 1}',
        ),
        (
            {"TrainingJobStatus": "Failed", "FailureReason": "AlgorithmError: , exit code: 137"},
            "TrainingJobFailed",
            "AlgorithmError: , exit code: 137",
        ),
        (
            {"TrainingJobStatus": "Stopped", "TrainingJobName": "regime-x", "SecondaryStatus": "MaxRuntimeExceeded"},
            "TrainingJobStopped",
            "Training job regime-x was stopped (MaxRuntimeExceeded): StopTrainingJob, or MaxRuntimeInSeconds reached.",
        ),
    ],
)
def test_a_failed_or_stopped_job_names_its_error(
    tmp_path: Path, data_dir: Path, training: dict[str, Any], error: str, cause: str
) -> None:
    # Given the definition's own Choice and Fail states, fed a DescribeTrainingJob answer
    machines = tmp_path / "machines"
    machines.mkdir()
    (machines / "fail.asl.json").write_text(json.dumps(_fail_states(json.loads(DEFINITION.read_text()))))
    result = LocalStateMachineRunner(state_machines_dir=machines).run("fail", {"training": training}, name="f")
    # Then the execution fails with the script's error type when there is one, SageMaker's words as cause
    assert (result.status, result.error, result.cause) == ("FAILED", error, cause)


def test_the_cli_retrains_through_the_state_machine_and_prints_the_decision(
    lake: ParquetLake, feature_key: str
) -> None:
    from typer.testing import CliRunner

    from portfolio_engine.cli import app

    args = ["regime", "retrain", "--restarts", "2", "--holdout-days", "252", "--min-train-days", "252"]
    result = CliRunner().invoke(app, [*args, "--run-id", "cli-retrain", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["decision"]["promoted"] and document["job_name"] == "regime-market-cli-retrain"
    assert _registry(lake).champion("market") == document["decision"]["version"]
    failed = CliRunner().invoke(app, [*args, "--min-train-days", "5000", "--run-id", "cli-short", "--json"])
    assert failed.exit_code == 1 and json.loads(failed.stdout)["error"] == "InsufficientDataError"
