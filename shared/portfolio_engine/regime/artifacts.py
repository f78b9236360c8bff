"""A trained regime model as stored files: ``model.joblib`` and ``metadata.json`` (bytes; no I/O here)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import joblib

from portfolio_engine.exceptions import ModelNotFoundError
from portfolio_engine.regime.definition import REGIME_CODE_VERSION
from portfolio_engine.regime.training import TrainedRegimeModel

MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"
_LIBRARIES = ("stochastic-portfolio-engine", "numpy", "scipy", "scikit-learn", "hmmlearn", "xgboost-cpu", "pandas")


def code_versions() -> dict[str, Any]:
    """The code a model was trained with: the regime code version and the libraries' versions."""
    libraries: dict[str, str] = {}
    for name in _LIBRARIES:
        try:
            libraries[name] = version(name)
        except PackageNotFoundError:
            continue
    return {"regime_code_version": REGIME_CODE_VERSION, "libraries": libraries}


def model_version(trained: TrainedRegimeModel, created_at: datetime) -> str:
    """A sortable version id: creation time (to the microsecond), the definition's and the data's hashes."""
    return f"{created_at.astimezone(UTC):%Y%m%dT%H%M%S%fZ}-{trained.spec.version[:6]}-{trained.data_hash[:8]}"


def artifact_files(
    trained: TrainedRegimeModel,
    *,
    feature_key: str | None,
    feature_version: str | None,
    created_at: datetime | None = None,
) -> dict[str, bytes]:
    """Serialise a trained model and its metadata (spec, data hash, metrics, code versions)."""
    created = created_at or datetime.now(UTC)
    buffer = io.BytesIO()
    joblib.dump(trained.estimator, buffer, compress=3)
    metadata = {
        "name": trained.spec.name,
        "version": model_version(trained, created),
        "created_at": created.astimezone(UTC).isoformat(),
        "spec": trained.spec.model_dump(mode="json"),
        "spec_version": trained.spec.version,
        "feature_key": feature_key,
        "feature_version": feature_version,
        "training_data_hash": trained.data_hash,
        "n_obs": trained.n_obs,
        "first_date": trained.first_date,
        "last_date": trained.last_date,
        "metrics": trained.metrics,
        "summary": trained.summary,
        "code": code_versions(),
    }
    return {
        MODEL_FILE: buffer.getvalue(),
        METADATA_FILE: json.dumps(metadata, indent=2, sort_keys=True, default=str).encode(),
    }


def load_estimator(payload: bytes) -> Any:
    """Rebuild a stored estimator (only from artefacts this engine wrote: joblib runs pickle).

    Raises
    ------
    ModelNotFoundError
        If the payload is not a model this code can load.
    """
    try:
        return joblib.load(io.BytesIO(payload))
    except Exception as exc:
        raise ModelNotFoundError(
            f"The stored model cannot be loaded: {type(exc).__name__}: {exc}",
            hint="Retrain it (`spe regime fit`): it was written by an incompatible version of the code.",
        ) from exc
