"""SageMaker training script for a regime model: ``python -m portfolio_engine.entrypoints.train_regime``.

It follows SageMaker's conventions, so the same script runs in a training job and on a laptop:

* input: the ``train`` channel, ``$SM_CHANNEL_TRAIN`` (default ``/opt/ml/input/data/train``), holding the
  feature set as Parquet (``*.parquet``) and optionally its ``manifest.json``;
* hyperparameters: ``$SM_HPS`` (a JSON object) or ``$SM_INPUT_CONFIG_DIR/hyperparameters.json``
  (SageMaker writes every value as a string); the keys are :class:`RegimeModelSpec`'s fields;
* output: ``model.joblib`` and ``metadata.json`` in ``$SM_MODEL_DIR`` (SageMaker tars it to S3),
  ``metrics.json`` in ``$SM_OUTPUT_DATA_DIR``, and metric lines ``name=value;`` on stdout for the job's
  metric definitions; on failure, ``$SM_OUTPUT_DIR/failure`` holds the error (SageMaker shows it as the
  job's FailureReason) and the exit code is 1.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from portfolio_engine.exceptions import EmptyDataError, PortfolioEngineError
from portfolio_engine.regime.artifacts import artifact_files
from portfolio_engine.regime.definition import RegimeModelSpec, training_frame
from portfolio_engine.regime.training import fit_regime_model

logger = logging.getLogger("portfolio_engine.train_regime")


def hyperparameters(env: Mapping[str, str]) -> dict[str, Any]:
    """SageMaker's hyperparameters: ``SM_HPS`` if set, else the config directory's JSON file."""
    if env.get("SM_HPS"):
        return dict(json.loads(env["SM_HPS"]))
    path = Path(env.get("SM_INPUT_CONFIG_DIR", "/opt/ml/input/config")) / "hyperparameters.json"
    return dict(json.loads(path.read_text())) if path.exists() else {}


def read_channel(channel: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The feature rows (every Parquet file of the channel) and the feature set's manifest."""
    files = sorted(channel.rglob("*.parquet"))
    if not files:
        raise EmptyDataError(
            f"The training channel {channel} holds no Parquet file.",
            hint="Point SM_CHANNEL_TRAIN (the 'train' channel's S3 prefix) at an exported feature set.",
        )
    features = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    manifest_path = channel / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    return features, manifest


def train(env: Mapping[str, str]) -> dict[str, float]:
    """Fit the model the hyperparameters describe on the channel's features and write the artefacts."""
    spec = RegimeModelSpec.from_hyperparameters(hyperparameters(env))
    features, manifest = read_channel(Path(env.get("SM_CHANNEL_TRAIN", "/opt/ml/input/data/train")))
    trained = fit_regime_model(training_frame(features, spec), spec)
    files = artifact_files(trained, feature_key=manifest.get("feature_key"), feature_version=manifest.get("version"))
    model_dir = Path(env.get("SM_MODEL_DIR", "/opt/ml/model"))
    model_dir.mkdir(parents=True, exist_ok=True)
    for name, payload in files.items():
        (model_dir / name).write_bytes(payload)
    output_dir = Path(env.get("SM_OUTPUT_DATA_DIR", "/opt/ml/output/data"))
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "metrics.json").write_text(json.dumps(trained.metrics, indent=2))
    return trained.metrics


def main(environ: Mapping[str, str] | None = None) -> int:
    """Run one training job; 0 on success, 1 with a ``failure`` file on a typed error."""
    env = os.environ if environ is None else environ
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    try:
        metrics = train(env)
    except PortfolioEngineError as exc:
        failure_dir = Path(env.get("SM_OUTPUT_DIR", "/opt/ml/output"))
        failure_dir.mkdir(parents=True, exist_ok=True)
        failure = {"errorType": type(exc).__name__, "errorMessage": exc.message, "hint": exc.hint}
        (failure_dir / "failure").write_text(json.dumps(failure))
        logger.error("training failed: %s: %s", type(exc).__name__, exc.message)
        return 1
    for name, value in metrics.items():
        print(f"{name}={value:.10g};")
    return 0


if __name__ == "__main__":  # pragma: no cover - run by SageMaker or LocalTrainingJob
    sys.exit(main())
