"""SageMaker training jobs on this machine: what answers a state machine's ``aws-sdk:sagemaker`` tasks locally.

moto's Step Functions interpreter runs ``arn:aws:states:::aws-sdk:sagemaker:createTrainingJob`` by
calling ``boto3.client("sagemaker").create_training_job(**Parameters)`` on boto3's default session
(``moto.stepfunctions.parser.asl.utils.boto_client``); moto's own SageMaker backend would mark the job
``Completed`` at once and run nothing. The local runner registers :meth:`LocalSageMaker.on_create` and
:meth:`LocalSageMaker.on_describe` as ``before-call`` hooks on that session, so the calls are answered
here, with SageMaker's request and response shapes:

* ``CreateTrainingJob`` reads each channel's ``S3Uri`` prefix (a lake URI: a folder, or ``s3://``),
  starts ``AlgorithmSpecification.ContainerEntrypoint`` (``["python", "-m", <module>]``: the module the
  container would run) with :class:`~portfolio_engine.adapters.training_job.LocalTrainingJob` in a
  worker thread, and returns at once, as SageMaker does. When the job ends, its model directory is
  written where SageMaker writes it: ``<S3OutputPath>/<TrainingJobName>/output/model.tar.gz``.
* ``DescribeTrainingJob`` answers ``InProgress``, ``Completed`` (``ModelArtifacts``) or ``Failed`` with the
  ``FailureReason`` SageMaker reports: ``AlgorithmError: `` and the script's failure file
  (``{"errorType": ..., "errorMessage": ..., "hint": ...}``), or ``ClientError: `` when a channel cannot
  be read. It waits up to ``poll_seconds`` for a running job before answering, so a definition's Wait
  state scaled to 0 does not spin.
"""

from __future__ import annotations

import io
import json
import logging
import tarfile
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow.fs as pafs
from botocore.awsrequest import AWSResponse, HTTPHeaders

from portfolio_engine.adapters.lake import ParquetLake, filesystem_for
from portfolio_engine.adapters.training_job import LocalTrainingJob, TrainingJobFailed
from portfolio_engine.exceptions import LakeError, PortfolioEngineError

logger = logging.getLogger(__name__)

#: SageMaker's FailureReason holds the first 1024 characters of the failure description.
FAILURE_REASON_CHARS = 1024
Listener = Callable[[str, str, dict[str, Any]], None]


def model_tarball(files: Mapping[str, bytes]) -> bytes:
    """A model directory as SageMaker uploads it: ``model.tar.gz`` with the files at its root."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, payload in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def failure_reason(exc: BaseException) -> str:
    """The FailureReason SageMaker would report for a job that ended with ``exc``.

    A typed error is what the training script writes to ``/opt/ml/output/failure`` (its class name,
    message and hint as JSON) after ``AlgorithmError: ``; anything else is a crash described in words.
    """
    if isinstance(exc, PortfolioEngineError) and not isinstance(exc, TrainingJobFailed):
        detail = json.dumps({"errorType": type(exc).__name__, "errorMessage": exc.message, "hint": exc.hint})
    else:
        detail = f"{type(exc).__name__}: {getattr(exc, 'message', exc)}"
    return f"AlgorithmError: {detail}"[:FAILURE_REASON_CHARS]


class _ClientError(Exception):
    """An error SageMaker's API would answer with (HTTP 400, ``Error.Code``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class _Job:
    request: dict[str, Any]
    arn: str
    artifacts_uri: str
    created: datetime
    status: str = "InProgress"
    secondary: str = "Starting"
    failure: str | None = None
    done: threading.Event = field(default_factory=threading.Event)


class LocalSageMaker:
    """Run SageMaker training jobs of a state machine on this machine (see the module docstring).

    Parameters
    ----------
    endpoint_url, region : str
        Where ``s3://`` channel and output URIs are read and written (the lake's S3 endpoint).
    in_process : bool
        Run the training module in this process (``LocalTrainingJob(in_process=True)``: no interpreter
        start-up) rather than as ``python -m <module>`` in a child process.
    poll_seconds : float
        Longest a ``DescribeTrainingJob`` waits for a running job to end before answering ``InProgress``.
    listener : callable, optional
        Told ``("start" | "end" | "error", "training_job", detail)``, as the runner's task listener.
    """

    def __init__(
        self,
        *,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        account: str = "123456789012",
        in_process: bool = True,
        poll_seconds: float = 1.0,
        listener: Listener | None = None,
    ) -> None:
        self.endpoint_url = endpoint_url
        self.region = region
        self.account = account
        self.in_process = in_process
        self.poll_seconds = poll_seconds
        self.listener = listener
        self.jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ the API
    def create_training_job(self, request: dict[str, Any]) -> dict[str, Any]:
        """Start a job; return ``{"TrainingJobArn": ...}`` at once (the job runs in a worker thread)."""
        name = str(request.get("TrainingJobName", ""))
        entrypoint = list(request.get("AlgorithmSpecification", {}).get("ContainerEntrypoint") or [])
        if len(entrypoint) != 3 or entrypoint[:2] != ["python", "-m"]:
            raise _ClientError(
                "ValidationException",
                f"The local runner starts AlgorithmSpecification.ContainerEntrypoint ['python', '-m', <module>]; "
                f"got {entrypoint}.",
            )
        output = str(request.get("OutputDataConfig", {}).get("S3OutputPath", "")).rstrip("/")
        with self._lock:
            if name in self.jobs:
                raise _ClientError("ResourceInUse", f"Training job names must be unique; {name} already exists.")
            job = _Job(
                request=request,
                arn=f"arn:aws:sagemaker:{self.region}:{self.account}:training-job/{name.lower()}",
                artifacts_uri=f"{output}/{name}/output/model.tar.gz",
                created=datetime.now(UTC),
            )
            self.jobs[name] = job
        threading.Thread(target=self._train, args=(name, job, entrypoint[2]), name=f"job-{name}", daemon=True).start()
        return {"TrainingJobArn": job.arn}

    def describe_training_job(self, name: str) -> dict[str, Any]:
        """The job's status (waiting up to ``poll_seconds`` for it to end), in DescribeTrainingJob's shape."""
        job = self.jobs.get(name)
        if job is None:
            raise _ClientError("ValidationException", f"Requested resource not found: training job {name}.")
        job.done.wait(self.poll_seconds)
        request = job.request
        described = {
            "TrainingJobName": name,
            "TrainingJobArn": job.arn,
            "TrainingJobStatus": job.status,
            "SecondaryStatus": job.secondary,
            "ModelArtifacts": {"S3ModelArtifacts": job.artifacts_uri},
            "HyperParameters": request.get("HyperParameters", {}),
            "AlgorithmSpecification": request.get("AlgorithmSpecification", {}),
            "RoleArn": request.get("RoleArn"),
            "InputDataConfig": request.get("InputDataConfig", []),
            "OutputDataConfig": request.get("OutputDataConfig", {}),
            "ResourceConfig": request.get("ResourceConfig", {}),
            "StoppingCondition": request.get("StoppingCondition", {}),
            "CreationTime": job.created.isoformat(),  # as it lands in the execution's JSON
        }
        if job.failure is not None:
            described["FailureReason"] = job.failure
        return described

    # ------------------------------------------------------------------ botocore hooks
    def on_create(self, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        """``before-call.sagemaker.CreateTrainingJob``: answer instead of the endpoint."""
        return self._answer(params, lambda body: self.create_training_job(body))

    def on_describe(self, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        """``before-call.sagemaker.DescribeTrainingJob``."""
        return self._answer(params, lambda body: self.describe_training_job(str(body.get("TrainingJobName", ""))))

    @staticmethod
    def _answer(
        params: dict[str, Any], call: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> tuple[AWSResponse, dict[str, Any]]:
        url = params.get("url", "local://sagemaker")
        try:
            parsed = call(json.loads(params.get("body") or b"{}"))
        except _ClientError as exc:
            error = {
                "Error": {"Code": exc.code, "Message": exc.message},
                "ResponseMetadata": {"HTTPStatusCode": 400, "RequestId": str(uuid.uuid4())},
            }
            return AWSResponse(url, 400, HTTPHeaders(), None), error
        return AWSResponse(url, 200, HTTPHeaders(), None), parsed

    # ------------------------------------------------------------------ the job
    def _store(self, uri: str) -> ParquetLake:
        # Channel and output URIs are lake URIs; the lake adapter reads and writes both kinds.
        return ParquetLake(uri, endpoint_url=self.endpoint_url, region=self.region)

    def _upload(self, uri: str, payload: bytes) -> None:
        fs, path = filesystem_for(uri, endpoint_url=self.endpoint_url, region=self.region)
        fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        # compression=None: pyarrow would otherwise gzip a "*.tar.gz" key a second time on the way out.
        with fs.open_output_stream(path, compression=None) as out:
            out.write(payload)

    def _read_channel(self, uri: str) -> dict[str, bytes]:
        """Every object under an S3Prefix channel (a folder locally), by its path under the prefix."""
        store = self._store(uri)
        selector = pafs.FileSelector(store.root, recursive=True, allow_not_found=True)
        try:
            infos = store.fs.get_file_info(selector)
        except OSError as exc:
            raise LakeError(f"Cannot list {uri}: {exc}") from exc
        keys = [
            i.path[len(store.root) + 1 :]
            for i in infos
            if i.type == pafs.FileType.File and not i.base_name.startswith(".")
        ]
        if not keys:
            raise LakeError(f"No object under {uri}.")
        return {key: store.get_bytes(key) for key in sorted(keys)}

    def _notify(self, event: str, name: str, detail: dict[str, Any]) -> None:
        if self.listener:
            self.listener(event, "training_job", {"job_name": name, **detail})

    def _train(self, name: str, job: _Job, module: str) -> None:
        self._notify("start", name, {"module": module})
        try:
            failure = self._run(name, job, module)
        except Exception as exc:  # SageMaker reports every way a job fails as its FailureReason
            failure = failure_reason(exc)
        if failure is None:
            job.secondary, job.status = "Completed", "Completed"
        else:
            # The reason first: a describe that sees "Failed" must see why.
            job.failure = failure
            job.secondary, job.status = "Failed", "Failed"
        job.done.set()
        if failure is None:
            self._notify("end", name, {"model_artifacts": job.artifacts_uri})
        else:
            logger.warning("training job %s failed: %s", name, failure)
            self._notify("error", name, {"FailureReason": failure})

    def _run(self, name: str, job: _Job, module: str) -> str | None:
        """Download the channels, train, upload the model; the FailureReason of unreadable channels, or None."""
        request = job.request
        try:
            channels = {
                str(c["ChannelName"]): self._read_channel(str(c["DataSource"]["S3DataSource"]["S3Uri"]))
                for c in request.get("InputDataConfig", [])
            }
        except (LakeError, KeyError) as exc:
            return f"ClientError: Data download failed: {exc}"[:FAILURE_REASON_CHARS]
        job.secondary = "Training"
        files = LocalTrainingJob(module, in_process=self.in_process).run(
            name, dict(request.get("HyperParameters") or {}), channels
        )
        job.secondary = "Uploading"
        self._upload(job.artifacts_uri, model_tarball(files))
        return None
