"""TrainRegime and DetectRegime: regime models from a stored feature set, through the registry.

Training runs the SageMaker training script through the ``TrainingJobs`` port (a local child process
here), then stores the artefacts and applies the promotion rule: the challenger and the champion are
scored on the same most recent days, less a BIC-style penalty for their parameters, and the challenger
wins only if it is not worse. The retrain state machine splits the same path around a real SageMaker
training job: ``prepare_regime_training`` writes the job's channel to the lake, ``register_regime_model``
reads its ``model.tar.gz``; both end in :func:`register_challenger`. Detection loads the champion and
returns filtered probabilities: data up to the last date only.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from portfolio_engine.contracts import DetectRegimeInput, DetectRegimeOutput, TrainRegimeInput, TrainRegimeOutput
from portfolio_engine.contracts.training import (
    TRAINING_PREFIX,
    PrepareRegimeTrainingInput,
    PrepareRegimeTrainingOutput,
    RegisterRegimeModelInput,
    RegisterRegimeModelOutput,
    training_job_name,
)
from portfolio_engine.exceptions import (
    EmptyDataError,
    InsufficientDataError,
    LakeError,
    ModelNotFoundError,
    SchemaError,
)
from portfolio_engine.ports import Lake, ModelRegistry, TrainingJobs
from portfolio_engine.regime.artifacts import METADATA_FILE, MODEL_FILE, load_estimator
from portfolio_engine.regime.definition import RegimeModelSpec, frame_hash, training_frame
from portfolio_engine.regime.training import PROMOTION_METRIC, decide_promotion, hmm_of, holdout_score

logger = logging.getLogger(__name__)


def _lake_key(feature_key: str) -> str:
    return feature_key.removeprefix("features/")


def read_model_features(lake: Lake, feature_key: str, spec: RegimeModelSpec) -> pd.DataFrame:
    """The model symbol's rows of a stored feature set (only the columns the model reads)."""
    return lake.read_features(_lake_key(feature_key), symbols=[spec.symbol], columns=spec.columns)


def _channel(features: pd.DataFrame, manifest: dict[str, Any], feature_key: str) -> dict[str, bytes]:
    buffer = io.BytesIO()
    features.to_parquet(buffer, index=False)
    document = {**manifest, "feature_key": feature_key}
    return {"features.parquet": buffer.getvalue(), "manifest.json": json.dumps(document, default=str).encode()}


@dataclass(frozen=True)
class Champion:
    """A loaded champion: its version, metadata and fitted estimator."""

    version: str
    metadata: dict[str, Any]
    estimator: Any


def load_version(registry: ModelRegistry, name: str, version: str) -> Champion:
    """A stored version of model ``name``, loaded (the champion, or the version a past run used).

    Raises
    ------
    ModelNotFoundError
        If the version is not stored.
    """
    return Champion(
        version=version,
        metadata=registry.metadata(name, version),
        estimator=load_estimator(registry.read_file(name, version, MODEL_FILE)),
    )


def load_champion(registry: ModelRegistry, name: str) -> Champion | None:
    """The champion of ``name``, or None before the first promotion."""
    version = registry.champion(name)
    return None if version is None else load_version(registry, name, version)


def champion_spec(champion: Champion) -> RegimeModelSpec:
    """The definition the champion was trained from."""
    return RegimeModelSpec.model_validate(champion.metadata["spec"])


def usable_on(champion: Champion, manifest: dict[str, Any]) -> bool:
    """Whether the champion can read a feature set: same feature version, its symbol present."""
    spec = champion_spec(champion)
    return bool(
        champion.metadata.get("feature_version") == manifest.get("version")
        and spec.symbol in manifest.get("symbols", [])
    )


def comparable(champion_definition: RegimeModelSpec, spec: RegimeModelSpec) -> bool:
    """Whether two definitions' predictive log-likelihoods are in the same units (same data, same scaling)."""
    return (champion_definition.symbol, champion_definition.features, champion_definition.scale) == (
        spec.symbol,
        spec.features,
        spec.scale,
    )


def train_regime(
    task: TrainRegimeInput, *, lake: Lake, registry: ModelRegistry, jobs: TrainingJobs
) -> TrainRegimeOutput:
    """Train a challenger on ``task.feature_key``, store its artefacts and decide whether it should be promoted.

    The decision is a proposal: ``pipeline.champion.commit_training`` (or the run's commit) records it and
    promotes the challenger only if the champion it was compared with is still the champion.

    Raises
    ------
    EmptyDataError
        If the feature set is not stored.
    RegimeModelError
        The training script's typed errors (too little data, constant or NaN features, no convergence).
    """
    spec = task.model
    manifest = lake.feature_manifest(_lake_key(task.feature_key)) or {}
    features = read_model_features(lake, task.feature_key, spec)
    files = jobs.run(
        training_job_name(spec.name, task.run_id),
        spec.to_hyperparameters(),
        {"train": _channel(features, manifest, task.feature_key)},
    )
    return register_challenger(task.run_id, spec, files, features, registry=registry)


def register_challenger(
    run_id: str, spec: RegimeModelSpec, files: Mapping[str, bytes], features: pd.DataFrame, *, registry: ModelRegistry
) -> TrainRegimeOutput:
    """Store a trained challenger's files and apply the promotion rule (what follows any training job).

    Only the immutable artefacts are written; the decision is returned for the commit to record. A pinned
    champion is never replaced (the decision says so).

    Parameters
    ----------
    run_id : str
    spec : RegimeModelSpec
        The definition the job trained.
    files : mapping of str to bytes
        The job's model directory: ``model.joblib`` and ``metadata.json``.
    features : DataFrame
        The model symbol's feature rows the job was given (re-read from the feature set).

    Raises
    ------
    ModelNotFoundError
        If the files are not a trained model, or were trained on other data than ``features``.
    """
    missing = [f for f in (MODEL_FILE, METADATA_FILE) if f not in files]
    if missing:
        raise ModelNotFoundError(
            f"The training job's model directory has no {missing} (it holds {sorted(files)}).",
            hint="The training script writes model.joblib and metadata.json to SM_MODEL_DIR; check its log.",
        )
    metadata = json.loads(files[METADATA_FILE])
    frame = training_frame(features, spec)
    if metadata["training_data_hash"] != frame_hash(frame):
        raise ModelNotFoundError(
            "The trained model's data hash differs from the feature set it was trained on.",
            hint="The feature set changed during training; run the training again.",
        )
    challenger_metric = float(metadata["metrics"][PROMOTION_METRIC])
    # Both sides are penalized for their parameters fitted before the holdout (older jobs: the final model's).
    challenger_parameters = float(metadata["metrics"].get("holdout_n_parameters", metadata["metrics"]["n_parameters"]))
    champion_parameters: float | None = None
    view = registry.champion_view(spec.name)
    champion = None if view is None or view.champion is None else load_version(registry, spec.name, view.champion)
    champion_metric: float | None = None
    is_comparable = True
    if champion is not None:
        # The champion's definition is refitted on the challenger's pre-holdout window: both are then
        # scored on the same days, unseen by either (the stored champion may have been fitted on them).
        definition = champion_spec(champion)
        is_comparable = comparable(definition, spec)
        if is_comparable:
            probe = definition.build_estimator().fit(frame.iloc[: -spec.holdout_days])
            champion_metric = holdout_score(probe, frame, spec.holdout_days)
            champion_parameters = float(hmm_of(probe).n_parameters_)
        else:
            champion_metric = float(champion.metadata.get("metrics", {}).get(PROMOTION_METRIC, np.nan))
    decision = decide_promotion(
        challenger_metric,
        champion_metric,
        challenger_parameters=challenger_parameters,
        n_train=len(frame) - spec.holdout_days,
        champion_parameters=champion_parameters,
        champion_compatible=is_comparable,
    )
    if champion is not None and view is not None and view.pinned and decision.promote:
        decision = dataclasses.replace(decision, promote=False, reason=f"the champion {champion.version} is pinned")
    version = str(metadata["version"])
    metadata["promotion"] = {
        "promoted": decision.promote,
        "reason": decision.reason,
        "champion_before": champion.version if champion else None,
        "champion_metric": champion_metric,
        **decision.scores(),
    }
    registry.save(spec.name, version, {**files, METADATA_FILE: json.dumps(metadata).encode()}, metadata)
    logger.info("regime model %s %s: %s (%s)", spec.name, version, decision.promote, decision.reason)
    return TrainRegimeOutput(
        run_id=run_id,
        name=spec.name,
        version=version,
        promoted=decision.promote,
        reason=decision.reason,
        champion=version if decision.promote else (champion.version if champion else None),
        champion_before=champion.version if champion else None,
        challenger_metric=challenger_metric,
        champion_metric=champion_metric,
        scores=decision.scores(),
        created_at=str(metadata["created_at"]),
        metrics={k: float(v) for k, v in metadata["metrics"].items()},
        n_obs=int(metadata["n_obs"]),
        first_date=metadata["first_date"],
        last_date=metadata["last_date"],
    )


def latest_feature_set(
    lake: Lake, *, symbol: str | None = None, source: str | None = None
) -> tuple[str, dict[str, Any]] | None:
    """The stored feature set (of ``source``, holding ``symbol``) with the latest last date, then the most rows.

    Returns its key (``features/...``) and manifest, or None when no stored set matches.
    """
    best: tuple[tuple[str, int, str], dict[str, Any]] | None = None
    for key in lake.feature_sets():
        manifest = lake.feature_manifest(key) or {}
        if source is not None and manifest.get("source") != source:
            continue
        if symbol is not None and symbol not in manifest.get("symbols", []):
            continue
        rank = (str(manifest.get("last_date", "")), int(manifest.get("rows", 0)), key)
        if best is None or rank > best[0]:
            best = (rank, manifest)
    return None if best is None else (f"features/{best[0][2]}", best[1])


def latest_feature_key(lake: Lake, symbol: str) -> str:
    """The key of the latest stored feature set holding ``symbol`` (see :func:`latest_feature_set`).

    Raises
    ------
    EmptyDataError
        If no stored feature set holds the symbol.
    """
    found = latest_feature_set(lake, symbol=symbol)
    if found is None:
        raise EmptyDataError(
            f"No stored feature set holds {symbol}.", hint="Run `spe run` first (it builds the feature set)."
        )
    return found[0]


def prepare_regime_training(task: PrepareRegimeTrainingInput, *, lake: Lake) -> PrepareRegimeTrainingOutput:
    """Write a SageMaker training job's ``train`` channel to the lake and describe the job to start.

    The channel (``training/regime/<run_id>/train/``: the model symbol's feature rows as Parquet and
    the feature set's manifest) is what :func:`train_regime` hands ``LocalTrainingJob``; the job writes
    its model under ``training/regime/<run_id>/output/``. Too little history is left for the job to
    report (its typed error becomes the execution's error).

    Raises
    ------
    EmptyDataError
        If no feature set is given and none holds the model's symbol, or the one given is not stored.
    SchemaError
        If the feature set has no rows for the model's symbol.
    """
    spec = task.request.model
    key = task.request.feature_key or latest_feature_key(lake, spec.symbol)
    manifest = lake.feature_manifest(_lake_key(key))
    if manifest is None:
        raise EmptyDataError(f"No complete feature set at {key} in {lake.uri}.", hint="`spe data show` lists them.")
    features = read_model_features(lake, key, spec)
    if features.empty:
        raise SchemaError(
            f"The feature set {key} has no rows for {spec.symbol!r}.",
            hint=f"Train on a feature set that holds it; this one holds {manifest.get('symbols')}.",
        )
    base = f"{TRAINING_PREFIX}/{task.run_id}"
    for filename, payload in _channel(features, manifest, key).items():
        lake.put_bytes(f"{base}/train/{filename}", payload)
    return PrepareRegimeTrainingOutput(
        run_id=task.run_id,
        job_name=training_job_name(spec.name, task.run_id),
        feature_key=key,
        model=spec,
        channel_uri=lake.key_uri(f"{base}/train"),
        output_uri=lake.key_uri(f"{base}/output"),
        hyperparameters=spec.to_hyperparameters(),
        rows=len(features),
        first_date=features["date"].min().date(),
        last_date=features["date"].max().date(),
    )


def lake_key_of(lake: Lake, uri: str) -> str:
    """The lake key of a URI under the lake's root (``s3://bucket/lake/a/b`` -> ``a/b``).

    Raises
    ------
    LakeError
        If the URI is not inside the lake.
    """
    root = lake.uri.rstrip("/") + "/"
    if not uri.startswith(root):
        raise LakeError(
            f"{uri} is not inside the lake {lake.uri}.",
            hint="Training jobs must write under the lake (PrepareRegimeTraining's output_uri).",
        )
    return uri[len(root) :]


def model_directory(tarball: bytes) -> dict[str, bytes]:
    """The files of a SageMaker ``model.tar.gz`` (the job's ``/opt/ml/model``), by file name.

    Only regular files are read, by their base name, into memory: nothing is extracted to disk. A
    plain tar is accepted too (the lake's pyarrow streams may already have un-gzipped a ``.gz`` key).

    Raises
    ------
    ModelNotFoundError
        If the payload is not a gzip tarball.
    """
    try:
        with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:*") as archive:
            return {
                m.name.rsplit("/", 1)[-1]: archive.extractfile(m).read()  # type: ignore[union-attr]
                for m in archive.getmembers()
                if m.isfile()
            }
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ModelNotFoundError(
            f"The training job's model.tar.gz cannot be read: {exc}",
            hint="It is not the archive SageMaker writes from /opt/ml/model; check the job's S3OutputPath.",
        ) from exc


def register_regime_model(
    task: RegisterRegimeModelInput, *, lake: Lake, registry: ModelRegistry
) -> RegisterRegimeModelOutput:
    """Store the model a SageMaker training job wrote and apply the promotion rule.

    Raises
    ------
    LakeError
        If the artefact is not in the lake.
    ModelNotFoundError
        If it holds no trained model, or one trained on other data than the feature set.
    """
    files = model_directory(lake.get_bytes(lake_key_of(lake, task.model_artifacts_uri)))
    features = read_model_features(lake, task.feature_key, task.model)
    result = register_challenger(task.run_id, task.model, files, features, registry=registry)
    return RegisterRegimeModelOutput(
        **result.model_dump(), job_name=task.job_name, model_artifacts_uri=task.model_artifacts_uri
    )


def regime_probabilities(estimator: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """Filtered probabilities P(state at t | data to t) of a fitted model's HMM, by date and state name."""
    hmm = hmm_of(estimator)
    columns = list(getattr(hmm, "feature_names_in_", frame.columns))
    proba = hmm.predict_proba(frame[columns])
    return pd.DataFrame(np.asarray(proba), index=frame.index, columns=list(hmm.state_names_))


def next_period_probabilities(estimator: Any, frame: pd.DataFrame) -> np.ndarray:
    """P(state at the next period | data to the last date).

    For an HMM, its filtered probabilities moved one step by the transition matrix; for a hybrid, its
    forecast (HMM and ensemble combined).
    """
    hmm = hmm_of(estimator)
    if hmm is estimator:
        return np.asarray(hmm.predict_next_proba(frame[list(hmm.feature_names_in_)]))[-1]
    return np.asarray(estimator.predict_proba(frame))[-1]


def detect_regime(
    task: DetectRegimeInput, *, lake: Lake, registry: ModelRegistry, jobs: TrainingJobs
) -> DetectRegimeOutput:
    """Current regime probabilities for ``task.portfolio`` from the champion of its regime model.

    When no champion reads this feature set's inputs (a fresh lake, a new feature version) and
    ``train_if_missing`` is set, a model is trained through the same path as ``train_regime`` and used;
    its promotion is proposed (``proposal``) and happens only when the run commits, so a run that fails
    later leaves the champion as it was. ``model_version`` (a replay) uses that stored version instead.
    When the run has no rows for the model's symbol, the output says so (``available=False``) instead of
    failing the run.

    Raises
    ------
    ModelNotFoundError
        If no usable champion exists and ``train_if_missing`` is false.
    """
    spec = task.model
    if task.index_symbol and task.index_symbol != spec.symbol and spec.symbol == RegimeModelSpec().symbol:
        spec = spec.model_copy(update={"symbol": task.index_symbol})
    manifest = lake.feature_manifest(_lake_key(task.feature_key)) or {}
    if spec.symbol not in manifest.get("symbols", [spec.symbol]):
        return DetectRegimeOutput(
            run_id=task.run_id,
            portfolio=task.portfolio,
            available=False,
            reason=f"the run has no prices for {spec.symbol}, the series the regime model watches",
            model_name=spec.name,
            symbol=spec.symbol,
        )
    if task.model_version is not None:
        champion: Champion | None = load_version(registry, spec.name, task.model_version)
    else:
        champion = load_champion(registry, spec.name)
    trained_now = False
    proposal: TrainRegimeOutput | None = None
    if champion is None or (task.model_version is None and not usable_on(champion, manifest)):
        if not task.train_if_missing:
            raise ModelNotFoundError(f"No champion regime model {spec.name!r} reads this feature set.")
        # Retrain the champion's own definition on this feature set (or the default one, the first time).
        definition = champion_spec(champion) if champion is not None else spec
        try:
            proposal = train_regime(
                TrainRegimeInput(run_id=task.run_id, feature_key=task.feature_key, model=definition),
                lake=lake,
                registry=registry,
                jobs=jobs,
            )
        except InsufficientDataError as exc:
            # A short run still rebalances; the regime is then unknown, and the output says why.
            logger.warning("no regime model for %s: %s", task.run_id, exc.message)
            return DetectRegimeOutput(
                run_id=task.run_id,
                portfolio=task.portfolio,
                available=False,
                reason=f"too little history to train a regime model: {exc.message}",
                model_name=spec.name,
                symbol=definition.symbol,
            )
        champion = load_version(registry, spec.name, proposal.version)
        trained_now = True
    spec = champion_spec(champion)
    frame = training_frame(read_model_features(lake, task.feature_key, spec), spec, min_obs=1)
    proba = regime_probabilities(champion.estimator, frame)
    hmm = hmm_of(champion.estimator)
    last = proba.iloc[-1]
    next_row = next_period_probabilities(champion.estimator, frame)
    names = list(proba.columns)
    return DetectRegimeOutput(
        run_id=task.run_id,
        portfolio=task.portfolio,
        available=True,
        model_name=spec.name,
        model_version=champion.version,
        trained_now=trained_now,
        proposal=proposal,
        symbol=spec.symbol,
        as_of=frame.index[-1].date(),
        state_names=names,
        probabilities={n: round(float(p), 10) for n, p in last.items()},
        regime=str(last.idxmax()),
        next_probabilities={n: round(float(p), 10) for n, p in zip(names, next_row, strict=True)},
        transition_matrix=np.asarray(hmm.transmat_).round(10).tolist(),
        expected_durations={
            n: float(d) for n, d in zip(names, np.asarray(hmm.expected_durations_, dtype=float), strict=True)
        },
    )
