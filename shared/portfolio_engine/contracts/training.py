"""Inputs and outputs of the retrain-regime state machine's tasks (a SageMaker training job between them).

``PrepareRegimeTraining`` writes the training channel to the lake and names the job; Step Functions
starts it (``sagemaker:createTrainingJob``) and polls it; ``RegisterRegimeModel`` reads the job's
``model.tar.gz`` and applies the promotion rule. URIs are lake URIs: ``s3://...`` when the lake is in
S3 (what SageMaker reads and writes on AWS), a folder path when the lake is local (the local runner
reads and writes there instead).
"""

from __future__ import annotations

import hashlib
import re
from datetime import date

from pydantic import BaseModel, ConfigDict, Field

from portfolio_engine.contracts.tasks import FeatureKey, RunId, TrainRegimeOutput, TriggerFields
from portfolio_engine.regime.definition import RegimeModelSpec

#: SageMaker's TrainingJobName: 1-63 letters, digits and single or repeated hyphens, no other character.
TRAINING_JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
#: Every training job this engine starts is named ``regime-...`` (the state machine's IAM policy relies on it).
TRAINING_JOB_PREFIX = "regime-"
#: Lake prefix of the jobs' channels (``<prefix>/<run_id>/train/``) and models (``<prefix>/<run_id>/output/``);
#: the SageMaker execution role may read and write only there.
TRAINING_PREFIX = "training/regime"


def training_job_name(model_name: str, run_id: str) -> str:
    """A valid, unique SageMaker job name for a run: ``regime-<model>-<run id>``.

    Characters SageMaker refuses (``_``, ``.``) become ``-``; a name over 63 characters is cut and
    ends with 8 hex digits of the full name's hash, so two long run ids never share a job name.
    """
    raw = f"{TRAINING_JOB_PREFIX}{model_name}-{run_id}"
    name = re.sub(r"[^a-zA-Z0-9-]", "-", raw).strip("-")
    if len(name) > 63:
        digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
        name = f"{name[:54].rstrip('-')}-{digest}"
    return name


class _Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetrainRegimeRequest(TriggerFields, _Contract):
    """What starts a retrain-regime execution: the state machine's input. Every field has a default."""

    feature_key: FeatureKey | None = Field(
        default=None, description="The feature set to train on; None: the latest one holding the model's symbol."
    )
    model: RegimeModelSpec = Field(default_factory=RegimeModelSpec)


class PrepareRegimeTrainingInput(_Contract):
    """PrepareRegimeTraining's input: the run id (the execution name) and the request."""

    run_id: RunId
    request: RetrainRegimeRequest = Field(default_factory=RetrainRegimeRequest)


class PrepareRegimeTrainingOutput(_Contract):
    """The training job to start: its name, channel, output location and hyperparameters."""

    run_id: str
    job_name: str = Field(pattern=TRAINING_JOB_NAME.pattern)
    feature_key: str
    model: RegimeModelSpec
    channel_uri: str = Field(description="The 'train' channel's prefix: features.parquet and manifest.json.")
    output_uri: str = Field(description="S3OutputPath: the job writes <output_uri>/<job_name>/output/model.tar.gz.")
    hyperparameters: dict[str, str] = Field(description="The model spec as SageMaker hyperparameters.")
    rows: int = Field(description="Feature rows of the model's symbol in the channel.")
    first_date: date | None
    last_date: date | None


class RegisterRegimeModelInput(_Contract):
    """RegisterRegimeModel's input: the finished job and what it was trained from."""

    run_id: RunId
    feature_key: FeatureKey
    model: RegimeModelSpec
    job_name: str = Field(pattern=TRAINING_JOB_NAME.pattern)
    model_artifacts_uri: str = Field(description="The job's ModelArtifacts.S3ModelArtifacts (model.tar.gz).")


class RegisterRegimeModelOutput(TrainRegimeOutput):
    """The promotion decision (as ``TrainRegimeOutput``) and the job that trained the challenger."""

    job_name: str
    model_artifacts_uri: str
