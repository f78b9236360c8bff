"""Contract test of the local runner: moto's interpreter plus in-process Lambda dispatch behave as AWS does.

Small handlers written to a temporary ``functions/`` folder make every path visible: a result passed
between states, a Retry that succeeds, a Catch that routes on the error's class name, a Fail state
with error and cause.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import boto3
import pytest

from portfolio_engine.exceptions import ConfigurationError, StateMachineError
from portfolio_engine.local.runner import LocalStateMachineRunner, placeholder_for, render_definition
from portfolio_engine.local.sagemaker import LocalSageMaker, failure_reason
from portfolio_engine.pipeline.regime import model_directory

HANDLERS = {
    "double": (
        "def lambda_handler(event, context):\n    return {'value': event['value'] * 2, 'fn': context.function_name}\n"
    ),
    "flaky": (
        "CALLS = []\n"
        "class SourceUnavailableError(Exception):\n    pass\n"
        "def lambda_handler(event, context):\n"
        "    CALLS.append(1)\n"
        "    if len(CALLS) < 3:\n        raise SourceUnavailableError('try again')\n"
        "    return {'attempts': len(CALLS)}\n"
    ),
    "reject": (
        "class DataValidationError(Exception):\n    pass\n"
        "def lambda_handler(event, context):\n    raise DataValidationError('3 symbols failed')\n"
    ),
}


def _machine(states: dict[str, Any], start: str) -> dict[str, Any]:
    return {"StartAt": start, "States": states}


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    functions, machines = tmp_path / "functions", tmp_path / "state_machines"
    for name, code in HANDLERS.items():
        (functions / name).mkdir(parents=True)
        (functions / name / "app.py").write_text(code)
    machines.mkdir()
    return functions, machines


def _write(machines: Path, name: str, definition: dict[str, Any]) -> None:
    (machines / f"{name}.asl.json").write_text(json.dumps(definition))


def test_placeholder_names_follow_the_function_folder() -> None:
    assert placeholder_for("ingest_prices") == "IngestPricesFunctionArn"
    assert placeholder_for("simulate_risk_shard") == "SimulateRiskShardFunctionArn"


def test_results_flow_between_states_and_the_execution_name_is_visible(layout: tuple[Path, Path]) -> None:
    functions, machines = layout
    _write(
        machines,
        "m",
        _machine(
            {
                "A": {
                    "Type": "Task",
                    "Resource": "${DoubleFunctionArn}",
                    "Parameters": {"value.$": "$.value", "run.$": "$$.Execution.Name"},
                    "ResultPath": "$.a",
                    "Next": "B",
                },
                "B": {
                    "Type": "Task",
                    "Resource": "${DoubleFunctionArn}",
                    "Parameters": {"value.$": "$.a.value"},
                    "ResultPath": "$.b",
                    "End": True,
                },
            },
            "A",
        ),
    )
    seen: list[tuple[str, str]] = []
    runner = LocalStateMachineRunner(functions, machines, listener=lambda e, f, d: seen.append((e, f)))
    result = runner.run("m", {"value": 3}, name="run-1")
    assert result.succeeded
    assert result.output == {"value": 3, "a": {"value": 6, "fn": "double"}, "b": {"value": 12, "fn": "double"}}
    assert seen == [("start", "double"), ("end", "double"), ("start", "double"), ("end", "double")]


def test_a_retry_on_the_error_name_succeeds(layout: tuple[Path, Path]) -> None:
    functions, machines = layout
    _write(
        machines,
        "m",
        _machine(
            {
                "A": {
                    "Type": "Task",
                    "Resource": "${FlakyFunctionArn}",
                    "End": True,
                    "Retry": [{"ErrorEquals": ["SourceUnavailableError"], "IntervalSeconds": 30, "MaxAttempts": 3}],
                },
            },
            "A",
        ),
    )
    result = LocalStateMachineRunner(functions, machines, wait_scale=0).run("m", {}, name="retry-1")
    assert result.succeeded and result.output == {"attempts": 3}
    assert result.seconds < 10  # the 30 s intervals were scaled away


def test_a_catch_routes_on_the_error_class_name_to_a_failed_state_with_its_cause(layout: tuple[Path, Path]) -> None:
    functions, machines = layout
    _write(
        machines,
        "m",
        _machine(
            {
                "A": {
                    "Type": "Task",
                    "Resource": "${RejectFunctionArn}",
                    "End": True,
                    "Catch": [
                        {"ErrorEquals": ["SomethingElse"], "Next": "Other"},
                        {"ErrorEquals": ["DataValidationError"], "ResultPath": "$.error", "Next": "Rejected"},
                    ],
                },
                "Other": {"Type": "Succeed"},
                "Rejected": {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"},
            },
            "A",
        ),
    )
    result = LocalStateMachineRunner(functions, machines).run("m", {}, name="catch-1")
    assert result.status == "FAILED" and result.error == "DataValidationError"
    assert json.loads(result.cause or "{}")["errorMessage"] == "3 symbols failed"
    with pytest.raises(StateMachineError, match="3 symbols failed") as info:
        result.raise_for_status()
    assert info.value.error == "DataValidationError"


def test_an_unknown_placeholder_is_a_configuration_error(layout: tuple[Path, Path]) -> None:
    functions, machines = layout
    _write(machines, "m", _machine({"A": {"Type": "Task", "Resource": "${MissingFunctionArn}", "End": True}}, "A"))
    with pytest.raises(ConfigurationError, match="MissingFunctionArn"):
        LocalStateMachineRunner(functions, machines).run("m", {}, name="x")


def test_an_unknown_machine_lists_the_known_ones(layout: tuple[Path, Path]) -> None:
    functions, machines = layout
    _write(machines, "known", _machine({"A": {"Type": "Succeed"}}, "A"))
    with pytest.raises(ConfigurationError, match=r"known: \['known'\]"):
        LocalStateMachineRunner(functions, machines).run("nope", {}, name="x")


def test_render_scales_waits(tmp_path: Path) -> None:
    path = tmp_path / "m.asl.json"
    path.write_text(
        json.dumps(
            _machine(
                {
                    "W": {"Type": "Wait", "Seconds": 60, "Next": "T"},
                    "T": {
                        "Type": "Task",
                        "Resource": "${DoubleFunctionArn}",
                        "End": True,
                        "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 5}],
                    },
                },
                "W",
            )
        )
    )
    rendered = json.loads(render_definition(path, {"DoubleFunctionArn": "arn:x"}, wait_scale=0))
    assert rendered["States"]["W"]["Seconds"] == 0
    assert rendered["States"]["T"]["Resource"] == "arn:x"
    assert rendered["States"]["T"]["Retry"][0]["IntervalSeconds"] == 5


def test_handlers_reach_other_aws_services_with_their_own_credentials(
    layout: tuple[Path, Path], aws_env: str, s3_lake_uri: str
) -> None:
    # Given a handler that lists buckets on the moto server the environment points at
    functions, machines = layout
    (functions / "peek").mkdir()
    (functions / "peek" / "app.py").write_text(
        "import os, boto3\n"
        "def lambda_handler(event, context):\n"
        "    s3 = boto3.client('s3', endpoint_url=os.environ['AWS_ENDPOINT_URL'])\n"
        "    names = [b['Name'] for b in s3.list_buckets()['Buckets']]\n"
        "    return {'key': os.environ['AWS_ACCESS_KEY_ID'], 'buckets': names}\n"
    )
    _write(machines, "m", _machine({"A": {"Type": "Task", "Resource": "${PeekFunctionArn}", "End": True}}, "A"))
    # When it runs inside the local runner (which simulates only Step Functions and Lambda)
    result = LocalStateMachineRunner(functions, machines).run("m", {}, name="peek-1")
    # Then its call went to the real server, signed with the environment's credentials
    assert result.succeeded, result.cause
    assert result.output["key"] == "testing"
    assert s3_lake_uri.split("/")[2] in result.output["buckets"]


# --- SageMaker training tasks (aws-sdk:sagemaker:*), answered by LocalSageMaker -------------------

TRAINING_MODULES = {
    # Sleeps as long as its hyperparameter says, then writes what it saw to the model directory.
    "spe_fake_train_ok": (
        "import json, time\n"
        "from pathlib import Path\n"
        "def main(env):\n"
        "    hps = json.loads(env['SM_HPS'])\n"
        "    time.sleep(float(hps['sleep']))\n"
        "    files = sorted(p.name for p in Path(env['SM_CHANNEL_TRAIN']).iterdir())\n"
        "    model = Path(env['SM_MODEL_DIR'])\n"
        "    model.mkdir(parents=True, exist_ok=True)\n"
        "    seen = {'files': files, 'hps': hps, 'job': env['TRAINING_JOB_NAME']}\n"
        "    (model / 'seen.json').write_text(json.dumps(seen))\n"
        "    return 0\n"
    ),
    # Fails the way the regime training script does: a typed error in the failure file, exit code 1.
    "spe_fake_train_fails": (
        "import json\n"
        "from pathlib import Path\n"
        "def main(env):\n"
        "    out = Path(env['SM_OUTPUT_DIR'])\n"
        "    out.mkdir(parents=True, exist_ok=True)\n"
        "    failure = {'errorType': 'InsufficientDataError', 'errorMessage': '12 rows', 'hint': 'Use more.'}\n"
        "    (out / 'failure').write_text(json.dumps(failure))\n"
        "    return 1\n"
    ),
}


def _training_machine(module: str, channel: str, output: str, sleep: float) -> dict[str, Any]:
    return _machine(
        {
            "Create": {
                "Type": "Task",
                "Resource": "arn:aws:states:::aws-sdk:sagemaker:createTrainingJob",
                "Parameters": {
                    "TrainingJobName.$": "$.job",
                    "AlgorithmSpecification": {
                        "TrainingImage": "${TrainingImageUri}",
                        "TrainingInputMode": "File",
                        "ContainerEntrypoint": ["python", "-m", module],
                    },
                    "RoleArn": "${SageMakerRoleArn}",
                    "HyperParameters": {"sleep": str(sleep)},
                    "InputDataConfig": [
                        {
                            "ChannelName": "train",
                            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": channel}},
                        }
                    ],
                    "OutputDataConfig": {"S3OutputPath": output},
                    "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
                    "StoppingCondition": {"MaxRuntimeInSeconds": 60},
                },
                "ResultPath": "$.created",
                "Next": "Wait",
            },
            "Wait": {"Type": "Wait", "Seconds": 30, "Next": "Describe"},
            "Describe": {
                "Type": "Task",
                "Resource": "arn:aws:states:::aws-sdk:sagemaker:describeTrainingJob",
                "Parameters": {"TrainingJobName.$": "$.job"},
                "ResultPath": "$.training",
                "Next": "Status",
            },
            "Status": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.training.TrainingJobStatus", "StringEquals": "InProgress", "Next": "Wait"}],
                "Default": "Ended",
            },
            "Ended": {"Type": "Succeed"},
        },
        "Create",
    )


@pytest.fixture
def training_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "modules"
    folder.mkdir()
    for module, code in TRAINING_MODULES.items():
        (folder / f"{module}.py").write_text(code)
    monkeypatch.syspath_prepend(str(folder))


def _describes(result: Any) -> int:
    return sum(1 for e in result.history if e["type"] == "TaskStateEntered" and e.get("name") == "Describe")


def test_a_training_job_runs_the_container_module_on_the_channel_and_uploads_model_tar_gz(
    layout: tuple[Path, Path], tmp_path: Path, training_modules: None
) -> None:
    # Given a channel folder and a job whose module takes 0.5 s, polled every 0.05 s
    functions, machines = layout
    channel = tmp_path / "lake" / "train"
    channel.mkdir(parents=True)
    (channel / "features.parquet").write_bytes(b"PAR1")
    (channel / "manifest.json").write_text("{}")
    (channel / ".features.parquet.tmp-1").write_bytes(b"a writer's leftover")
    output = tmp_path / "lake" / "output"
    _write(machines, "m", _training_machine("spe_fake_train_ok", str(channel), str(output), sleep=0.5))
    seen: list[tuple[str, str]] = []
    sagemaker = LocalSageMaker(poll_seconds=0.05, listener=lambda e, f, d: seen.append((e, f)))
    runner = LocalStateMachineRunner(functions, machines, wait_scale=0, sagemaker=sagemaker)
    # When the machine creates the job and polls it
    result = runner.run("m", {"job": "regime-test-1"}, name="train-1")
    # Then CreateTrainingJob returned at once and DescribeTrainingJob said InProgress before Completed
    assert result.succeeded, result.cause
    training = result.output["training"]
    assert result.output["created"]["TrainingJobArn"].endswith(":training-job/regime-test-1")
    assert training["TrainingJobStatus"] == "Completed" and "FailureReason" not in training
    assert _describes(result) >= 3
    # and the model directory was uploaded where SageMaker puts it, as a gzip tarball
    artifact = output / "regime-test-1" / "output" / "model.tar.gz"
    assert training["ModelArtifacts"]["S3ModelArtifacts"] == str(artifact)
    assert artifact.read_bytes()[:2] == b"\x1f\x8b"
    assert model_directory(artifact.read_bytes()) == {
        "seen.json": json.dumps(
            {"files": ["features.parquet", "manifest.json"], "hps": {"sleep": "0.5"}, "job": "regime-test-1"}
        ).encode()
    }
    assert seen == [("start", "training_job"), ("end", "training_job")]


def test_a_failed_job_reports_the_scripts_failure_file_as_sagemaker_does(
    layout: tuple[Path, Path], tmp_path: Path, training_modules: None
) -> None:
    functions, machines = layout
    channel = tmp_path / "train"
    channel.mkdir()
    (channel / "x.parquet").write_bytes(b"PAR1")
    _write(machines, "m", _training_machine("spe_fake_train_fails", str(channel), str(tmp_path / "out"), sleep=0))
    result = LocalStateMachineRunner(functions, machines, wait_scale=0).run("m", {"job": "regime-f"}, name="f-1")
    training = result.output["training"]
    assert training["TrainingJobStatus"] == "Failed" and training["SecondaryStatus"] == "Failed"
    assert training["FailureReason"] == (
        'AlgorithmError: {"errorType": "InsufficientDataError", "errorMessage": "12 rows", "hint": "Use more."}'
    )
    assert not (tmp_path / "out").exists()


def test_an_empty_channel_fails_the_job_as_a_client_error(
    layout: tuple[Path, Path], tmp_path: Path, training_modules: None
) -> None:
    functions, machines = layout
    _write(machines, "m", _training_machine("spe_fake_train_ok", str(tmp_path / "none"), str(tmp_path), sleep=0))
    result = LocalStateMachineRunner(functions, machines, wait_scale=0).run("m", {"job": "regime-e"}, name="e-1")
    training = result.output["training"]
    assert training["TrainingJobStatus"] == "Failed"
    assert training["FailureReason"].startswith("ClientError: Data download failed: No object under")


def test_a_job_name_is_used_once_and_the_entrypoint_must_name_a_module() -> None:
    sagemaker = LocalSageMaker()
    request = {"TrainingJobName": "regime-x", "AlgorithmSpecification": {"ContainerEntrypoint": ["train"]}}
    http, parsed = sagemaker.on_create({"body": json.dumps(request).encode()})
    assert http.status_code == 400 and parsed["Error"]["Code"] == "ValidationException"
    http, parsed = sagemaker.on_describe({"body": b'{"TrainingJobName": "regime-x"}'})
    assert http.status_code == 400 and "not found" in parsed["Error"]["Message"]


def test_failure_reason_is_the_failure_file_after_algorithm_error_cut_at_1024_characters() -> None:
    from portfolio_engine.adapters.training_job import TrainingJobFailed
    from portfolio_engine.exceptions import InsufficientDataError

    reason = failure_reason(InsufficientDataError("x" * 2000))
    assert len(reason) == 1024 and reason.startswith('AlgorithmError: {"errorType": "InsufficientDataError"')
    assert failure_reason(TrainingJobFailed("exited with -9")) == "AlgorithmError: TrainingJobFailed: exited with -9"


def test_training_reads_and_writes_s3_channels_through_the_lake_endpoint(
    layout: tuple[Path, Path], s3_lake_uri: str, aws_env: str, training_modules: None
) -> None:
    # Given a channel in a bucket of the moto server the environment points at
    from portfolio_engine.adapters.lake import ParquetLake

    functions, machines = layout
    lake = ParquetLake(s3_lake_uri, endpoint_url=aws_env)
    lake.put_bytes("training/run/train/features.parquet", b"PAR1")
    channel, output = lake.key_uri("training/run/train"), lake.key_uri("training/run/output")
    _write(machines, "m", _training_machine("spe_fake_train_ok", channel, output, sleep=0))
    # When the job runs (the runner's default LocalSageMaker reads the endpoint from the settings)
    result = LocalStateMachineRunner(functions, machines, wait_scale=0).run("m", {"job": "regime-s3"}, name="s3-1")
    # Then the model is in the bucket at the URI DescribeTrainingJob gave, gzipped once (as SageMaker does)
    assert result.succeeded and result.output["training"]["TrainingJobStatus"] == "Completed", result.output
    key = "training/run/output/regime-s3/output/model.tar.gz"
    assert result.output["training"]["ModelArtifacts"]["S3ModelArtifacts"] == lake.key_uri(key)
    bucket, prefix = s3_lake_uri.removeprefix("s3://").split("/", 1)
    s3 = boto3.client("s3", endpoint_url=aws_env, region_name="us-east-1")
    raw = s3.get_object(Bucket=bucket, Key=f"{prefix}/{key}")["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(raw)), mode="r:") as archive:
        assert archive.getnames() == ["seen.json"]
    assert json.loads(model_directory(raw)["seen.json"])["files"] == ["features.parquet"]
