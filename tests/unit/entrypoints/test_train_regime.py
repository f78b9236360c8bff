"""The SageMaker training script, run with SageMaker's variables: in a child process and in-process."""

from __future__ import annotations

import io
import json
from datetime import date
from pathlib import Path

import pytest

from portfolio_engine.adapters.market_data.bundled import BundledSource
from portfolio_engine.adapters.training_job import LocalTrainingJob, TrainingJobFailed
from portfolio_engine.entrypoints.train_regime import main
from portfolio_engine.exceptions import ConfigurationError, EmptyDataError, InsufficientDataError
from portfolio_engine.features import DEFAULT_FEATURE_SPEC, compute_features
from portfolio_engine.regime.artifacts import load_estimator
from portfolio_engine.regime.definition import RegimeModelSpec

SPEC = RegimeModelSpec(n_restarts=2, holdout_days=252, min_train_days=252)


@pytest.fixture(scope="module")
def channel() -> dict[str, bytes]:
    bars = BundledSource().fetch(["^GSPC"], start=date(2012, 1, 1), end=date(2020, 12, 31))
    features = compute_features(bars, DEFAULT_FEATURE_SPEC.model_copy(update={"index_symbol": None}))
    buffer = io.BytesIO()
    features.to_parquet(buffer, index=False)
    manifest = {"version": "abc123", "feature_key": "features/version=abc123/dataset=def456"}
    return {"features.parquet": buffer.getvalue(), "manifest.json": json.dumps(manifest).encode()}


def test_a_child_process_training_job_writes_the_model_directory(channel: dict[str, bytes]) -> None:
    files = LocalTrainingJob().run("job-1", SPEC.to_hyperparameters(), {"train": channel})
    assert sorted(files) == ["metadata.json", "model.joblib"]
    meta = json.loads(files["metadata.json"])
    assert meta["feature_version"] == "abc123" and meta["first_date"] > "2012-01-01"
    assert meta["last_date"] == "2020-12-31" and meta["spec"] == SPEC.model_dump(mode="json")
    model = load_estimator(files["model.joblib"])
    assert model.n_states_ == 2


def test_the_script_reads_hyperparameters_json_when_sm_hps_is_absent(tmp_path: Path, channel: dict) -> None:
    train = tmp_path / "input" / "data" / "train"
    train.mkdir(parents=True)
    for name, payload in channel.items():
        (train / name).write_bytes(payload)
    config = tmp_path / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(SPEC.to_hyperparameters() | {"n_states": "3"}))
    env = {
        "SM_CHANNEL_TRAIN": str(train),
        "SM_MODEL_DIR": str(tmp_path / "model"),
        "SM_OUTPUT_DATA_DIR": str(tmp_path / "output" / "data"),
        "SM_OUTPUT_DIR": str(tmp_path / "output"),
        "SM_INPUT_CONFIG_DIR": str(config),
    }
    assert main(env) == 0
    assert json.loads((tmp_path / "model" / "metadata.json").read_text())["spec"]["n_states"] == 3
    metrics = json.loads((tmp_path / "output" / "data" / "metrics.json").read_text())
    assert metrics["n_states"] == 3 and "holdout_loglik_per_obs" in metrics


@pytest.mark.parametrize("in_process", [True, False])
def test_a_typed_failure_crosses_the_process_boundary_with_its_class_and_hint(
    channel: dict[str, bytes], in_process: bool
) -> None:
    jobs = LocalTrainingJob(in_process=in_process)
    too_long = SPEC.model_copy(update={"min_train_days": 5000}).to_hyperparameters()
    with pytest.raises(InsufficientDataError, match="needs at least 5000") as info:
        jobs.run("job-short", too_long, {"train": channel})
    assert "longer history" in info.value.hint


def test_an_empty_channel_and_bad_hyperparameters_fail_with_typed_errors(channel: dict[str, bytes]) -> None:
    jobs = LocalTrainingJob(in_process=True)
    with pytest.raises(EmptyDataError, match="no Parquet file"):
        jobs.run("job-empty", SPEC.to_hyperparameters(), {"train": {"readme.txt": b"x"}})
    with pytest.raises(ConfigurationError, match="covariance_type"):
        jobs.run("job-bad", {"covariance_type": "banana"}, {"train": channel})


def test_a_crash_without_a_failure_file_is_reported_with_the_log_tail(channel: dict[str, bytes]) -> None:
    with pytest.raises(TrainingJobFailed, match="exited with 1") as info:
        LocalTrainingJob(module="portfolio_engine.no_such_module").run("job-x", {}, {"train": channel})
    assert "No module named" in info.value.message
